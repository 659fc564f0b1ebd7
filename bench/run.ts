/**
 * `npm run bench`: runs every suite in bench/suites/ in its own Node process (so a native crash or a leak in one
 * cannot skew another), then writes bench/results/latest.json and bench/results/latest.md.
 * `npm run bench -- gpu-node inference` runs only the named suites; the other suites' results already in
 * latest.json are kept (each suite records when it ran). `npm run bench -- --help` lists the suites.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { BenchSuiteResult } from "./types.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { timeout: { type: "string", default: "2400" }, help: { type: "boolean", short: "h" } },
});
const available = readdirSync(path.join(here, "suites"))
  .filter((f) => f.endsWith(".ts"))
  .map((f) => f.slice(0, -3))
  .sort();
if (values.help) {
  console.log(
    [
      "usage: node bench/run.ts [suite ...] [--timeout SECONDS]",
      "",
      "Runs the named suites (default: all), each in its own process, and writes bench/results/latest.{json,md};",
      "results of suites not run this time are kept from the previous latest.json.",
      `suites: ${available.join(", ")}`,
      "--timeout  seconds per suite (default 2400: the load suite takes 13–20 min on a shared 2-core machine)",
    ].join("\n"),
  );
  process.exit(0);
}
const unknown = positionals.filter((p) => !available.includes(p));
if (unknown.length > 0) {
  console.error(`unknown suite(s): ${unknown.join(", ")}; available: ${available.join(", ")}`);
  process.exit(2);
}
const selected = positionals.length > 0 ? positionals : available;
const reportStarted = new Date().toISOString();
const resultsDir = path.join(here, "results");
mkdirSync(resultsDir, { recursive: true });

type SuiteRun = BenchSuiteResult & { seconds: number; error?: string; ran_at?: string };
const suites: SuiteRun[] = [];
for (const suite of selected) {
  const out = path.join(os.tmpdir(), `fedge-bench-${process.pid}-${suite}.json`);
  console.log(`▶ ${suite}`);
  const started = performance.now();
  const child = spawnSync(process.execPath, [path.join(here, "run-one.ts"), suite, out], {
    stdio: "inherit",
    timeout: Number(values.timeout) * 1000,
  });
  const seconds = (performance.now() - started) / 1000;
  try {
    const measures = JSON.parse(readFileSync(out, "utf8")) as BenchSuiteResult["measures"];
    suites.push({ suite, measures, seconds, ran_at: new Date().toISOString() });
    rmSync(out, { force: true });
  } catch {
    const why = child.error ? String(child.error) : `exit ${child.status ?? child.signal}`;
    console.error(`✗ ${suite} failed: ${why}`);
    suites.push({ suite, measures: [], seconds, error: why, ran_at: new Date().toISOString() });
  }
}
// A partial run keeps the other suites' last results (a previous full run's `generated_at` is their time).
if (selected.length < available.length) {
  try {
    const previous = JSON.parse(readFileSync(path.join(resultsDir, "latest.json"), "utf8")) as {
      generated_at?: string;
      suites?: SuiteRun[];
    };
    for (const old of previous.suites ?? []) {
      if (available.includes(old.suite) && !selected.includes(old.suite)) {
        suites.push({ ...old, ran_at: old.ran_at ?? previous.generated_at ?? "unknown" });
      }
    }
    suites.sort((a, b) => a.suite.localeCompare(b.suite));
  } catch {
    // no previous results
  }
}

const machine = {
  cpus: os.cpus().length,
  cpu_model: os.cpus()[0]?.model ?? "unknown",
  memory_gib: +(os.totalmem() / 2 ** 30).toFixed(1),
  platform: `${os.platform()} ${os.release()}`,
  node: process.version,
};
const report = { generated_at: new Date().toISOString(), machine, suites };
writeFileSync(path.join(resultsDir, "latest.json"), JSON.stringify(report, null, 2) + "\n");

const fmt = (x: number) =>
  !Number.isFinite(x) ? String(x) : Math.abs(x) >= 1000 || Math.abs(x) < 0.01 ? x.toExponential(3) : x.toPrecision(4);
const lines = [
  "# fedge benchmarks",
  "",
  `Generated ${report.generated_at} on ${machine.cpus}× ${machine.cpu_model}, ${machine.memory_gib} GiB, ${machine.platform}, Node ${machine.node}.`,
  "Each measure is compared with a baseline measured in the same run; the ratio is what to read.",
  ...(suites.some((x) => x.ran_at && x.ran_at < reportStarted)
    ? [
        "",
        `Suites run at other times: ${suites
          .filter((x) => x.ran_at && x.ran_at < reportStarted)
          .map((x) => `${x.suite} (${x.ran_at})`)
          .join(", ")}.`,
      ]
    : []),
  "",
  "| suite | measure | value | baseline | ratio | goal | met |",
  "| --- | --- | --- | --- | --- | --- | --- |",
];
for (const s of suites) {
  if (s.error) lines.push(`| ${s.suite} | **failed**: ${s.error} | | | | | |`);
  for (const m of s.measures) {
    lines.push(
      `| ${s.suite} | ${m.name}: ${m.description} | ${fmt(m.value)} ${m.unit} | ${fmt(m.baseline)} ${m.unit} (${m.baseline_name}) | ${fmt(m.ratio)} | ${m.goal ?? ""} | ${m.goal_met === undefined ? "" : m.goal_met ? "yes" : "**no**"} |`,
    );
  }
}
const notes = suites.flatMap((s) => s.measures.filter((m) => m.notes).map((m) => `- ${s.suite}/${m.name}: ${m.notes}`));
if (notes.length > 0) lines.push("", "## Notes", "", ...notes);
writeFileSync(path.join(resultsDir, "latest.md"), lines.join("\n") + "\n");
console.log(lines.join("\n"));
process.exit(suites.some((s) => s.error) ? 1 : 0);
