/**
 * @module
 * The contract every benchmark suite follows. `npm run bench` runs each `bench/suites/*.ts` in its own
 * process and gathers their measures into `bench/results/latest.json` and `latest.md`.
 * Every measure carries its baseline, measured in the same run, and the ratio: machines are noisy, ratios less so.
 */
export interface BenchMeasure {
  /** Short id, unique within the suite, e.g. `cpu-clip-accumulate-noise`. */
  name: string;
  /** What was measured, in words. */
  description: string;
  /** The measured value. */
  value: number;
  unit: string;
  /** What it is compared against, in words, e.g. `TypedArray.set memcpy of the same bytes`. */
  baseline_name: string;
  baseline: number;
  /** value / baseline. */
  ratio: number;
  /** Whether a higher ratio is better (throughput) or a lower one (latency, size). */
  better: "higher" | "lower";
  /** The issue's goal for the ratio, if it states one, e.g. `>= 0.5`. */
  goal?: string;
  /** Whether the goal holds in this run (absent when there is no goal). */
  goal_met?: boolean;
  /** Anything a reader needs to interpret the number (sample count, p50/p99, machine caveats). */
  notes?: string;
}

export interface BenchSuiteResult {
  suite: string;
  measures: BenchMeasure[];
}

/** Helper: build a measure and judge its goal. */
export function measure(m: Omit<BenchMeasure, "ratio" | "goal_met"> & { goalRatio?: number }): BenchMeasure {
  const ratio = m.value / m.baseline;
  const { goalRatio, ...rest } = m;
  const out: BenchMeasure = { ...rest, ratio };
  if (goalRatio !== undefined) {
    out.goal = `${m.better === "higher" ? ">=" : "<="} ${goalRatio}`;
    out.goal_met = m.better === "higher" ? ratio >= goalRatio : ratio <= goalRatio;
  }
  return out;
}
