/**
 * @module
 * `npm run demo -- --privacy distributed`: central and distributed DP side by side, as pure functions of the runs.
 * Both modes run the same task in process (`runInProcess`: the same round engine, device code, recipe and fixed clip
 * norm C) at the same headline target ε; each states the ε of its own accountant: central the Gaussian mechanism's
 * RDP ledger, distributed the RDP charge of the distributed discrete Gaussian (Kairouz, Liu & Steinke 2021, arXiv
 * 2102.06387) for the noise shares it counts (zero-out neighbours amplified by the coin for a checked-in cohort,
 * add/remove for a sampled one), and beside it the ε against the edge (`distributed-epsilon.ts`).
 */
import { distributedEpsilonLines } from "./distributed-epsilon.ts";

/**
 * Why the comparison's fixed C is the recipe's C: it was chosen on the validation pool (demo/TUNING.md: the initial C
 * search picked 0.1, and the fixed-clip candidate at that C scored 94.28% against adaptive clipping's 94.88%); the
 * test digits chose nothing.
 */
export const FIXED_CLIP_WHY =
  "the recipe's C, chosen on the validation pool (demo/TUNING.md), where fixed C = 0.1 scored 94.28% against adaptive " +
  "clipping's 94.88%; distributed mode cannot adapt C, since secure aggregation never shows the devices' clip bits";

/** One in-process run of either mode (the fields of `runInProcess`'s result the comparison reads). */
export interface ModeRun {
  privacy: "central" | "distributed";
  seed: number;
  /** ε spent, from the run's ledger. */
  epsilon: number | null;
  noiseMultiplier: number | null;
  /** Last round's test accuracy, int8 weights. */
  final: number;
  /** What one device uploads per round it reports in. */
  uploadBytesPerUpdate: number;
  /** One device's step per round: train + clip + int8 compress (central), train + encode (distributed). */
  deviceSecondsPerUpdate: number;
  /** One round in process, averaged over the run's rounds. */
  roundSeconds: number;
  /** Distributed, checked-in cohort: seconds to encode one coin-excluded device's input (zero update + share). */
  noiseOnlySecondsPerInput?: number;
  /** ε against the edge (null: no bound; absent: not stated), see `distributed-epsilon.ts`. */
  epsilonAgainstEdge?: number | null;
}

/** One mode served through the local edge (`served-modes.ts`): the run's figures, ε from the edge's ledger. */
export interface ServedModeRun extends ModeRun {
  population: string;
  devices: number;
  /** Per round: devices selected, inputs in the aggregate (distributed: the sum's survivors), and its outcome. */
  rounds: { roundId: string; selected: number; aggregated: number; outcome: string; seconds: number }[];
}

/** What the report states about the comparison. */
export interface ModeComparison {
  /** The headline target ε both modes were solved for, at δ. */
  epsilonTarget: number;
  delta: number;
  /** The fixed clip norm both modes used, and why that value. */
  clipNorm: number;
  clipWhy: string;
  /** Values in one update (the trainable parameters), and that length padded to a power of two for the rotation. */
  updateLength: number;
  paddedLength: number;
  /**
   * Distributed mode's modulus 2^bits, the inputs a round needs to release its sum, and who adds noise shares (absent:
   * `sampled`).
   */
  distributed: { bits: number; minClients: number; maxClients: number; cohort?: "checked-in" | "sampled" };
  /**
   * The in-process cohort both modes ran on, chosen by `distributed-cohort.ts`'s rule (stated in `rule`): q, q·N,
   * who adds noise shares and how many (absent: `sampled`, q·N), n_min, the add/remove floor there and at the
   * recipe's own q.
   */
  cohort?: {
    samplingRate: number;
    expectedClients: number;
    cohort?: "checked-in" | "sampled";
    noiseShares?: number;
    minClients: number;
    floor: number;
    recipeFloor: number;
    rule: string;
  };
  /** In process: every device of the demo, every seed. */
  runs: ModeRun[];
  /**
   * Served through the local edge (seed 1, the first devices of the fleet's partition), central first, both at
   * `epsilon` (the headline ε when `headline`, else the served rule's, with the floor that forced it).
   */
  served?: {
    devices: number;
    epsilon?: number;
    floor?: number;
    headline?: boolean;
    rule?: string;
    /** The rounds and q both served modes ran, and what chose them (`served-setting.ts`). */
    setting?: { rounds: number; samplingRate: number; why: string };
    distributed: { minClients: number; maxClients: number };
    runs: ServedModeRun[];
  };
}

/** One mode's line of the table: means over its seeds (ε and z are the same for every seed of a mode). */
export interface ModeRow {
  privacy: "central" | "distributed";
  seeds: number[];
  accuracy: number;
  epsilon: number;
  noiseMultiplier: number;
  bytesPerUpdate: number;
  deviceSeconds: number;
  roundSeconds: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The central and the distributed row. Throws when either mode has no run, or a private run has no ε. */
export function modeRows(c: ModeComparison): [central: ModeRow, distributed: ModeRow] {
  const row = (privacy: ModeRow["privacy"]): ModeRow => {
    const runs = c.runs.filter((r) => r.privacy === privacy).sort((a, b) => a.seed - b.seed);
    if (runs.length === 0) throw new RangeError(`the comparison has no ${privacy} run`);
    const epsilons = runs.map((r) => r.epsilon);
    if (epsilons.some((e) => e === null)) throw new RangeError(`a ${privacy} run has no ε: no ε without a ledger`);
    return {
      privacy,
      seeds: runs.map((r) => r.seed),
      accuracy: mean(runs.map((r) => r.final)),
      // the largest spend of any seed: a mode's guarantee is the worst of its runs
      epsilon: Math.max(...(epsilons as number[])),
      noiseMultiplier: mean(runs.map((r) => r.noiseMultiplier ?? NaN)),
      bytesPerUpdate: mean(runs.map((r) => r.uploadBytesPerUpdate)),
      deviceSeconds: mean(runs.map((r) => r.deviceSecondsPerUpdate)),
      roundSeconds: mean(runs.map((r) => r.roundSeconds)),
    };
  };
  return [row("central"), row("distributed")];
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

/** The served table: both modes through the local edge, what each column measures, and the round outcomes. */
function servedMarkdown(c: ModeComparison, s: NonNullable<ModeComparison["served"]>): string[] {
  const central = s.runs.find((r) => r.privacy === "central");
  const distributed = s.runs.find((r) => r.privacy === "distributed");
  if (!central || !distributed) throw new RangeError("the served comparison needs a central and a distributed run");
  const L: string[] = [
    `### Served through the local edge (${s.devices} devices, seed 1)`,
    "",
    `Both modes through \`wrangler dev\`, each its own population and ledger on the edge, on the same ${s.devices} devices ` +
      `(the first of the fleet's partition; real SDK devices with their privacy policy), from seed 1's public model, with ` +
      `the same recipe and C = ${c.clipNorm}, both solved for ε = ${s.epsilon ?? c.epsilonTarget}. Distributed: SecAgg+ in the round's ` +
      `Durable Object, every stage on the deadline its task states (closed early once every device still in it answered); ` +
      `a sum is released with at least ${s.distributed.minClients} inputs.`,
    "",
    ...(s.setting
      ? [`**Rounds:** ${s.setting.rounds} at q = ${s.setting.samplingRate}, in both modes: ${s.setting.why}.`, ""]
      : []),
    ...(s.headline === false && s.rule
      ? [`**Why ε = ${s.epsilon} here, not ${c.epsilonTarget}:** ${s.rule}.`, ""]
      : []),
    "| mode | noise z | ε (edge ledger) | served accuracy (int8, /predict) | bytes per device per round | device CPU per round | round time | rounds aggregated |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  const line = (r: ServedModeRun, bytes: string) =>
    `| ${r.privacy} | ${(r.noiseMultiplier ?? NaN).toFixed(3)} | ${(r.epsilon ?? NaN).toFixed(3)} | ${pct(r.final)} | ` +
    `${Math.round(r.uploadBytesPerUpdate)} (${bytes}) | ${(r.deviceSecondsPerUpdate * 1000).toFixed(1)} ms | ` +
    `${r.roundSeconds.toFixed(2)} s | ${r.rounds.filter((x) => x.outcome !== "abandoned").length} of ${r.rounds.length} |`;
  L.push(line(central, "signed int8 upload"), line(distributed, "SecAgg+ messages sent and received"));
  const abandoned = distributed.rounds.filter((x) => x.outcome === "abandoned").length;
  L.push(
    "",
    `Distributed against central, served: accuracy ${((distributed.final - central.final) * 100).toFixed(2)} points, ` +
      `bytes ${ratio(distributed.uploadBytesPerUpdate, central.uploadBytesPerUpdate)}, device CPU ` +
      `${ratio(distributed.deviceSecondsPerUpdate, central.deviceSecondsPerUpdate)}, round time ` +
      `${ratio(distributed.roundSeconds, central.roundSeconds)}. Device CPU: this process's main-thread CPU while its ` +
      `simulated devices ran a round (training, encoding, SecAgg+ or upload, their HTTP client), per device that took ` +
      `part. Inputs per distributed round: ${distributed.rounds.map((x) => x.aggregated).join(", ")}` +
      (abandoned > 0 ? ` (${abandoned} round(s) released no sum and stay charged)` : "") +
      ".",
    "",
  );
  return L;
}

/** The cost a checked-in cohort adds: every coin-excluded device encodes (and, served, secure-aggregates) a zero update. */
function noiseOnlyCost(c: ModeComparison): string {
  const xs = c.runs.filter((r) => r.privacy === "distributed").map((r) => r.noiseOnlySecondsPerInput ?? NaN);
  const encode = Number.isFinite(mean(xs))
    ? ` (encoding alone: ${(mean(xs) * 1000).toFixed(1)} ms each, in process)`
    : "";
  return (
    ` The price of the checked-in cohort: each round every coin-excluded device also inputs, a zero update with its ` +
    `noise share${encode}; served, it runs the whole secure aggregation too (not counted in the device CPU above).`
  );
}

/** The report's section: the side-by-side tables and what each column measures. */
export function modeComparisonMarkdown(c: ModeComparison): string[] {
  const [central, distributed] = modeRows(c);
  const seeds = `seed${central.seeds.length === 1 ? "" : "s"} ${central.seeds.join(", ")}`;
  const L: string[] = ["## Central vs distributed DP at ε = " + c.epsilonTarget, ""];
  if (c.served) L.push(...servedMarkdown(c, c.served), "### In process (every device, more seeds)", "");
  const checkedIn = c.distributed.cohort === "checked-in";
  const cohortText = !c.cohort
    ? ""
    : c.cohort.cohort === "checked-in"
      ? `, on the same cohort, **q = ${c.cohort.samplingRate}** (${c.cohort.expectedClients} devices a round expected ` +
        `in both modes; in distributed mode all ${c.cohort.noiseShares} devices check in and add a noise share, a sum ` +
        `released from n_min = ${c.cohort.minClients} inputs), chosen as ${c.cohort.rule}`
      : `, on the same cohort, **q = ${c.cohort.samplingRate}** (${c.cohort.expectedClients} devices a round expected, ` +
        `a sum released from n_min = ${c.cohort.minClients}; add/remove floor there ε = ${c.cohort.floor.toFixed(3)}), ` +
        `chosen as ${c.cohort.rule}`;
  L.push(
    `The same task in process (same devices' data, round engine, device code and recipe; ${seeds}), at the same target ` +
      `ε = ${c.epsilonTarget}, δ = ${c.delta.toExponential()}` +
      cohortText +
      `, with one fixed clip norm **C = ${c.clipNorm}** in both modes: ` +
      `${c.clipWhy}. Central: devices clip, int8-compress and upload; the server adds noise of std z·C to their sum. Distributed: ` +
      (checkedIn
        ? `the devices the coin selects clip and encode their update for secure aggregation (rotation, rounding, their share ` +
          `of the discrete Gaussian, modulo 2^${c.distributed.bits}); every other checked-in device encodes a zero update (its ` +
          `noise share alone); the server sees only the sum of all inputs, released when at least ${c.distributed.minClients} ` +
          `arrive (at most ${c.distributed.maxClients}), and divides it by q·N as central mode does.`
        : `devices clip, encode for secure aggregation (rotation, rounding, their share of the discrete Gaussian, modulo 2^${c.distributed.bits}) ` +
          `and the server sees only the sum, released when at least ${c.distributed.minClients} devices report (at most ${c.distributed.maxClients}).`),
    "",
    "| mode | noise z | ε (its accountant) | accuracy (mean of seeds) | bytes per device per round | device CPU per round | round time |",
    "|---|---:|---:|---:|---:|---:|---:|",
  );
  const line = (r: ModeRow, what: string) =>
    `| ${r.privacy} | ${r.noiseMultiplier.toFixed(3)} | ${r.epsilon.toFixed(3)} (${what}) | ${pct(r.accuracy)} | ` +
    `${Math.round(r.bytesPerUpdate)} | ${(r.deviceSeconds * 1000).toFixed(1)} ms | ${r.roundSeconds.toFixed(2)} s |`;
  L.push(
    line(central, "RDP, sampled Gaussian"),
    line(
      distributed,
      checkedIn
        ? "RDP, distributed discrete Gaussian, checked-in cohort: zero-out amplified by the coin (KLS21, KMSTTX21, Zhu & Wang)"
        : "RDP, distributed discrete Gaussian, add/remove (KLS21, Zhu & Wang)",
    ),
  );
  const edges = c.runs.filter((r) => r.privacy === "distributed").map((r) => r.epsilonAgainstEdge);
  if (edges.length > 0 && edges.every((x) => x !== undefined)) {
    // the worst seed, as for ε; null (no bound) wins
    const edge = edges.some((x) => x === null) ? null : Math.max(...(edges as number[]));
    L.push(
      "",
      ...distributedEpsilonLines({
        epsilon: distributed.epsilon,
        epsilonAgainstEdge: edge,
        delta: c.delta,
        cohort: c.distributed.cohort ?? "sampled",
      }),
    );
  }
  L.push(
    "",
    `Distributed against central: accuracy ${((distributed.accuracy - central.accuracy) * 100).toFixed(2)} points, ` +
      `bytes ${ratio(distributed.bytesPerUpdate, central.bytesPerUpdate)}, device CPU ${ratio(distributed.deviceSeconds, central.deviceSeconds)}, ` +
      `round time ${ratio(distributed.roundSeconds, central.roundSeconds)}. Bytes: central's signed int8 update against distributed's ` +
      `encoding (4 bytes a value: the ${c.updateLength} values padded to ${c.paddedLength} for the rotation); the secure-aggregation ` +
      `messages (keys, shares) ` +
      `are not counted in process. Device CPU: the device step timed on this machine's one thread, train + clip + int8 compress ` +
      `against train + clip + encode. Round time: a whole round in process, every device included.` +
      (checkedIn ? noiseOnlyCost(c) : ""),
    "",
  );
  return L;
}
