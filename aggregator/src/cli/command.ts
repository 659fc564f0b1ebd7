/**
 * @module
 * The shape of a `fedge` sub-command and the usage error every command throws on bad arguments (exit code 2).
 */

/** Where a command writes (injected so tests can run commands in-process). */
export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
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

/** Bad command-line arguments: the dispatcher prints `fedge: <message>` on stderr and exits with code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Exit code of a command that did its job. */
export const EXIT_OK = 0;

/** Exit code of a run that failed (budget exceeded, an edge error, a conflict with the checkpoint, anything else). */
export const EXIT_FAILURE = 1;

/** Exit code for usage errors (as many Unix tools): bad flags, config file, key file or parameter values. */
export const EXIT_USAGE = 2;
