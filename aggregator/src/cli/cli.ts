/**
 * @module
 * The `fedge` dispatcher: a table of sub-commands. Add a command by writing `commands/<name>.ts` (exporting a
 * {@link Command}) and one line in {@link COMMANDS}.
 */
import { FedgeError } from "@fedge/protocol";
import { OnnxFormatError, OnnxLayoutError, UnsupportedModelError } from "@fedge/ml";
import { InvalidPrivacyParameterError, PrivacyBudgetExceededError } from "@fedge/privacy";
import { CheckpointError } from "../checkpoint.ts";
import { ConfigError } from "../config.ts";
import { EdgeClientError } from "../edge/admin-client.ts";
import { SigningKeyFileError } from "../export.ts";
import { QuantizeInputError } from "../quantize-onnx.ts";
import { RoundStateError } from "../round.ts";
import { RobustWithDpError } from "../strategy/dp-central.ts";
import { UpdateRejectedError } from "../strategy/strategy.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, flagIn, type CliIO, type Command } from "./command.ts";
import { privacyCommand } from "./commands/privacy.ts";
import { simulateCommand } from "./commands/simulate.ts";
import { aggregateCommand } from "./commands/aggregate.ts";
import { rollbackCommand } from "./commands/rollback.ts";
import { quantizeCommand } from "./commands/quantize.ts";
import { auditCommand } from "./commands/audit.ts";
import { ChargeMismatchError, EdgeBudgetRefusedError } from "../edge/charge.ts";
import { BackendError } from "@fedge/gpu-node";

/** Sub-commands by name. Others (aggregate, simulate, rollback) are added here. */
export const COMMANDS: Record<string, Command> = {
  privacy: privacyCommand,
  simulate: simulateCommand,
  aggregate: aggregateCommand,
  rollback: rollbackCommand,
  quantize: quantizeCommand,
  audit: auditCommand,
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
    "Options (every command):",
    "  --json      machine output only: results are JSON lines on stdout (as without it), and stderr carries JSON",
    '              too: an error is {"error":{"code","message","flag","fix","command","exit_code"}}; no progress line',
    "  -h, --help  this help, or a command's flags",
    "",
    "On a terminal, simulate and aggregate keep one progress line per round on stderr.",
    "",
    "Exit codes (every command; the reason or the edge's error code starts the line on stderr):",
    `  ${EXIT_OK}  done`,
    `  ${EXIT_USAGE}  bad arguments: flags, the --config file (invalid population config), the signing key file, a`,
    "     value a library refused as out of range (privacy parameters included: no noise multiplier reaches the ε)",
    `  ${EXIT_FAILURE}  the run failed: budget_exceeded (the round would spend more than the privacy budget), an edge`,
    "     answer (`409 conflict: ...`), the checkpoint or runner state does not fit (config_mismatch, corrupt,",
    "     corrupt_state, state_mismatch, invalid_state), a round conflict (round_in_progress, round_already_run,",
    "     round_collecting, round_id_mismatch, version_conflict, version_not_published), a refused update",
    "     (invalid_shape, non_finite, ...), close_timeout, an ONNX file that is malformed or that the edge cannot serve",
    "     (invalid_model), an unreadable input or calibration file of fedge quantize (invalid_input), or anything else",
    "",
  ].join("\n");
}

/**
 * The CLI's one mapping from the libraries' domain errors to exit codes and the stderr line (see {@link helpText}).
 * Usage-like errors print only their message; failures print their reason (or the edge's code) first.
 */
export function exitOf(err: unknown): { code: number; label: string | undefined } {
  if (
    err instanceof UsageError ||
    err instanceof ConfigError ||
    err instanceof SigningKeyFileError ||
    err instanceof RobustWithDpError
  )
    return { code: EXIT_USAGE, label: undefined };
  if (err instanceof BackendError) {
    return err.reason === "invalid_argument"
      ? { code: EXIT_USAGE, label: undefined }
      : { code: EXIT_FAILURE, label: err.reason };
  }
  if (err instanceof InvalidPrivacyParameterError) {
    return err.reason === "invalid_parameter" || err.reason === "unreachable_target"
      ? { code: EXIT_USAGE, label: undefined }
      : { code: EXIT_FAILURE, label: err.reason };
  }
  if (
    err instanceof PrivacyBudgetExceededError ||
    err instanceof RoundStateError ||
    err instanceof CheckpointError ||
    err instanceof EdgeClientError ||
    err instanceof UpdateRejectedError ||
    err instanceof ChargeMismatchError ||
    err instanceof EdgeBudgetRefusedError
  )
    return { code: EXIT_FAILURE, label: err.reason };
  if (err instanceof OnnxFormatError || err instanceof OnnxLayoutError || err instanceof UnsupportedModelError)
    return { code: EXIT_FAILURE, label: "invalid_model" };
  if (err instanceof QuantizeInputError) return { code: EXIT_FAILURE, label: "invalid_input" };
  // A wire error (EdgeAdminError: the edge's answer) or one a dependency still raises with a code.
  if (err instanceof FedgeError)
    return err.code === "bad_request"
      ? { code: EXIT_USAGE, label: undefined }
      : { code: EXIT_FAILURE, label: err.code };
  if (err instanceof RangeError) return { code: EXIT_USAGE, label: undefined };
  return { code: EXIT_FAILURE, label: undefined };
}

/**
 * Writes an error on stderr: `fedge <command>: [label: ]message`, plus a `fix:` line for usage errors; under
 * `--json` one `{"error":{...}}` object instead.
 */
function reportError(
  io: CliIO,
  command: string,
  e: { label: string | undefined; message: string; flag?: string | undefined; fix?: string | undefined },
  exitCode: number,
): number {
  if (io.json) {
    const code = e.label ?? (exitCode === EXIT_USAGE ? "usage" : "error");
    const error = { code, message: e.message, ...(e.flag ? { flag: e.flag } : {}), ...(e.fix ? { fix: e.fix } : {}) };
    io.stderr(JSON.stringify({ error: { ...error, command, exit_code: exitCode } }) + "\n");
  } else {
    const prefix = command ? `fedge ${command}` : "fedge";
    io.stderr(`${prefix}: ${e.label ? `${e.label}: ` : ""}${e.message}\n${e.fix ? `  fix: ${e.fix}\n` : ""}`);
  }
  return exitCode;
}

/** Runs `fedge` with `argv` (without node and script); resolves to the exit code. Never throws. */
export async function runCli(argv: string[], ioIn: CliIO): Promise<number> {
  // `--json` is global: taken out wherever it stands before a `--` that ends the options.
  const end = argv.indexOf("--");
  const json = ioIn.json === true || (end === -1 ? argv : argv.slice(0, end)).includes("--json");
  if (json) argv = argv.filter((a, i) => a !== "--json" || (end !== -1 && i > end));
  const io: CliIO = json ? { stdout: ioIn.stdout, stderr: ioIn.stderr, json: true } : ioIn;
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    (name === undefined ? io.stderr : io.stdout)(helpText());
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    const fix = `use one of ${Object.keys(COMMANDS).join(", ")} (see fedge --help)`;
    return reportError(io, "", { label: undefined, message: `unknown command "${name}"`, fix }, EXIT_USAGE);
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout(command.usage);
    return EXIT_OK;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    const { code, label } = exitOf(err);
    const message = err instanceof Error ? err.message : String(err);
    if (code !== EXIT_USAGE) return reportError(io, name, { label, message }, code);
    // A usage error names the flag at fault and how to fix it.
    const flag = err instanceof UsageError ? err.flag : flagIn(message);
    const fix =
      (err instanceof UsageError ? err.fix : undefined) ??
      `run \`fedge ${name} --help\` for ${flag ? `what ${flag} takes` : "every flag and its range"}`;
    return reportError(io, name, { label, message, flag, fix }, code);
  }
}
