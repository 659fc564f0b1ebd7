/**
 * @module
 * Process entry of the `fedge` bin (aggregator/bin/fedge.js imports this): runs the dispatcher on process.argv.
 */
import { runCli } from "./cli.ts";

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
});
