/**
 * @module
 * Process entry of the `fedge` bin (aggregator/bin/fedge.js imports this): runs the dispatcher on process.argv. On a
 * terminal, long work draws one progress line on stderr (`io.progress`), which log lines print above.
 */
import { runCli } from "./cli.ts";

let progressShown = false;
const clear = () => {
  if (progressShown) process.stderr.write("\r\x1b[2K");
  progressShown = false;
};

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => {
    clear();
    process.stderr.write(t);
  },
  ...(process.stderr.isTTY
    ? {
        progress: (t: string) => {
          process.stderr.write(`\r\x1b[2K${t.slice(0, Math.max(20, (process.stderr.columns ?? 80) - 1))}`);
          progressShown = true;
        },
      }
    : {}),
});
if (progressShown) process.stderr.write("\n");
