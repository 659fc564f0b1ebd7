/**
 * @module
 * The shape of a `fedge` sub-command, the usage error every command throws on bad arguments (exit code 2), how a
 * command parses its flags (`parseFlags`, over node:util `parseArgs`), and the exit codes.
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** Where a command writes (injected so tests can run commands in-process). */
export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /**
   * Replaces the one progress line of long work (rounds, simulate) on a terminal. The dispatcher drops it under
   * `--json`, and main.ts gives it only when stderr is a terminal; commands call it as `io.progress?.(text)`.
   */
  progress?: (text: string) => void;
  /** `--json`: everything on stderr is JSON too (errors as `{"error":{…}}`), and there is no progress line. */
  json?: boolean;
}

/** One sub-command: `fedge <name> [args]`. */
export interface Command {
  /** One line for `fedge --help`. */
  summary: string;
  /** Full help text for `fedge <name> --help`. */
  usage: string;
  /** Runs the command; resolves to the process exit code. Throw {@link UsageError} for bad arguments. */
  run(argv: string[], io: CliIO): Promise<number>;
}

/** Bad command-line arguments: the dispatcher prints the message, the flag and the fix on stderr and exits with 2. */
export class UsageError extends Error {
  /** The flag at fault (`--steps`); found in the message when not given. */
  readonly flag: string | undefined;
  /** How to fix it; the dispatcher falls back to pointing at `fedge <command> --help`. */
  readonly fix: string | undefined;

  constructor(message: string, options: { flag?: string; fix?: string } = {}) {
    super(message);
    this.name = "UsageError";
    this.flag = options.flag ?? flagIn(message);
    this.fix = options.fix;
  }
}

/**
 * A command's flags (`parseArgs`, strict, no positionals); an unknown flag or a missing value is a
 * {@link UsageError} naming it.
 */
export function parseFlags<const O extends ParseArgsOptionsConfig>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options }).values;
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0]!);
  }
}

/** The first `--flag` a message names, if any. */
export function flagIn(message: string): string | undefined {
  return /(?:^|[\s'"(])(--[a-z][a-z0-9-]*)/.exec(message)?.[1];
}

/** Exit code of a command that did its job. */
export const EXIT_OK = 0;

/** Exit code of a run that failed (budget exceeded, an edge error, a conflict with the checkpoint, anything else). */
export const EXIT_FAILURE = 1;

/** Exit code for usage errors (as many Unix tools): bad flags, config file, key file or parameter values. */
export const EXIT_USAGE = 2;
