/** Runs one suite (bench/suites/<name>.ts) and writes its measures as JSON to the given file. */
import { writeFileSync } from "node:fs";
import type { BenchMeasure } from "./types.ts";

const [suite, out] = process.argv.slice(2);
if (!suite || !out) {
  console.error("usage: run-one.ts <suite> <out.json>");
  process.exit(2);
}
const mod = (await import(`./suites/${suite}.ts`)) as { default: () => Promise<BenchMeasure[]> };
const measures = await mod.default();
writeFileSync(out, JSON.stringify(measures));
process.exit(0);
