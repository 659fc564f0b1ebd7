/**
 * @module
 * The `fedge` dispatcher: a table of sub-commands. Add a command by writing `commands/<name>.ts` (exporting a
 * {@link Command}) and one line in {@link COMMANDS}.
 */
import { FedgeError } from "@fedge/protocol";
import { InvalidPrivacyParameterError, PrivacyBudgetExceededError } from "@fedge/privacy";
import { EXIT_USAGE, UsageError, type CliIO, type Command } from "./command.ts";
import { privacyCommand } from "./commands/privacy.ts";
import { simulateCommand } from "./commands/simulate.ts";
import { aggregateCommand } from "./commands/aggregate.ts";
import { rollbackCommand } from "./commands/rollback.ts";

/** Sub-commands by name. Others (aggregate, simulate, rollback) are added here. */
export const COMMANDS: Record<string, Command> = {
  privacy: privacyCommand,
  simulate: simulateCommand,
  aggregate: aggregateCommand,
  rollback: rollbackCommand,
};

export function helpText(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    "Usage: fedge <command> [options]",
    "",
    "Commands:",
    ...lines,
    "",
    "Run `fedge <command> --help` for a command's options.",
    "",
  ].join("\n");
}

/** Runs `fedge` with `argv` (without node and script); resolves to the exit code. Never throws. */
export async function runCli(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    (name === undefined ? io.stderr : io.stdout)(helpText());
    return name === undefined ? EXIT_USAGE : 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    io.stderr(`fedge: unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(", ")}; see fedge --help)\n`);
    return EXIT_USAGE;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout(command.usage);
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    const badParameter =
      err instanceof InvalidPrivacyParameterError &&
      (err.reason === "invalid_parameter" || err.reason === "unreachable_target");
    if (err instanceof UsageError || badParameter || (err instanceof FedgeError && err.code === "bad_request")) {
      io.stderr(`fedge ${name}: ${err.message}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof PrivacyBudgetExceededError || err instanceof InvalidPrivacyParameterError) {
      io.stderr(`fedge ${name}: ${err.reason}: ${err.message}\n`);
      return 1;
    }
    if (err instanceof FedgeError) {
      io.stderr(`fedge ${name}: ${err.code}: ${err.message}\n`);
      return 1;
    }
    io.stderr(`fedge ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
