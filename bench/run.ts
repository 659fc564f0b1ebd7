/**
 * `npm run bench`: runs every suite in bench/suites/ in its own Node process (so a native crash or a leak in one
 * cannot skew another), then writes bench/results/latest.json and bench/results/latest.md.
 * `npm run bench -- gpu-node inference` runs only the named suites and updates their entries in the results,
 * keeping the other suites' entries from their own runs (each suite records when it ran). `npm run bench -- --help`
 * lists the suites.
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
const resultsDir = path.join(here, "results");
mkdirSync(resultsDir, { recursive: true });

type SuiteRun = BenchSuiteResult & { seconds: number; error?: string; run_at: string };
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
    suites.push({ suite, measures, seconds, run_at: new Date().toISOString() });
    rmSync(out, { force: true });
  } catch {
    const why = child.error ? String(child.error) : `exit ${child.status ?? child.signal}`;
    console.error(`✗ ${suite} failed: ${why}`);
    suites.push({ suite, measures: [], seconds, error: why, run_at: new Date().toISOString() });
  }
}

const machine = {
  cpus: os.cpus().length,
  cpu_model: os.cpus()[0]?.model ?? "unknown",
  memory_gib: +(os.totalmem() / 2 ** 30).toFixed(1),
  platform: `${os.platform()} ${os.release()}`,
  node: process.version,
};
// A partial run keeps the other suites' entries from the previous results (with their own run times).
if (positionals.length > 0) {
  try {
    const previous = JSON.parse(readFileSync(path.join(resultsDir, "latest.json"), "utf8")) as {
      generated_at?: string;
      suites?: SuiteRun[];
    };
    for (const old of previous.suites ?? []) {
      if (!suites.some((s) => s.suite === old.suite))
        suites.push({ ...old, run_at: old.run_at ?? previous.generated_at ?? "" });
    }
    suites.sort((a, b) => (a.suite < b.suite ? -1 : a.suite > b.suite ? 1 : 0));
  } catch {
    /* no previous results */
  }
}
const report = { generated_at: new Date().toISOString(), machine, suites };
writeFileSync(path.join(resultsDir, "latest.json"), JSON.stringify(report, null, 2) + "\n");

const fmt = (x: number) =>
  !Number.isFinite(x) ? String(x) : Math.abs(x) >= 1000 || Math.abs(x) < 0.01 ? x.toExponential(3) : x.toPrecision(4);
const lines = [
  "# fedge benchmarks",
  "",
  `Generated ${report.generated_at} on ${machine.cpus}× ${machine.cpu_model}, ${machine.memory_gib} GiB, ${machine.platform}, Node ${machine.node}.`,
  "Each measure is compared with a baseline measured in the same run; the ratio is what to read.",
  ...(positionals.length > 0
    ? [`This run updated ${selected.join(", ")}; other suites keep their results from the run dated beside them.`]
    : []),
  "",
  "| suite | measure | value | baseline | ratio | goal | met |",
  "| --- | --- | --- | --- | --- | --- | --- |",
];
for (const s of suites) {
  if (s.error) lines.push(`| ${s.suite} | **failed**: ${s.error} | | | | | |`);
  const when = positionals.length > 0 ? ` (${s.run_at.slice(0, 10)})` : "";
  for (const m of s.measures) {
    lines.push(
      `| ${s.suite}${when} | ${m.name}: ${m.description} | ${fmt(m.value)} ${m.unit} | ${fmt(m.baseline)} ${m.unit} (${m.baseline_name}) | ${fmt(m.ratio)} | ${m.goal ?? ""} | ${m.goal_met === undefined ? "" : m.goal_met ? "yes" : "**no**"} |`,
    );
  }
}
const notes = suites.flatMap((s) => s.measures.filter((m) => m.notes).map((m) => `- ${s.suite}/${m.name}: ${m.notes}`));
if (notes.length > 0) lines.push("", "## Notes", "", ...notes);
writeFileSync(path.join(resultsDir, "latest.md"), lines.join("\n") + "\n");
console.log(lines.join("\n"));
process.exit(suites.some((s) => s.error) ? 1 : 0);
