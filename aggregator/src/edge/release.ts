/**
 * @module
 * What the aggregator tells the edge it released for a DP round it finished (`RoundRelease`), built from the round's
 * summary and its charge: C used and the next C, the charged z, and under adaptive clipping the noised fraction b̃ of
 * unclipped updates it moved C with (Andrew et al. 2021, arXiv 1905.03871, Alg. 1), as b̃, m·b̃ and σ_b. All of it is
 * post-processing of the round's charged mechanism; the exact counts (`summary.count`, `summary.unclippedCount`) are
 * never part of it.
 */
import type { RoundRelease } from "@fedge/protocol";
import type { RoundSummary } from "../checkpoint.ts";
import type { RoundCharge } from "./charge.ts";

/**
 * The release of a finished round, or `null` for a population without DP (its exact counts are public). `taskClipNorm`
 * is the C the round's task gave the devices: in local mode they clipped to it and the server clipped nothing, so the
 * summary has none.
 */
export function releaseOf(
  summary: RoundSummary,
  charge: RoundCharge | null,
  taskClipNorm?: number,
): RoundRelease | null {
  if (charge === null) return null;
  const c = summary.clipNorm ?? taskClipNorm;
  if (c === undefined) {
    throw new RangeError(
      `round ${summary.roundId} is differentially private but neither it nor its task has a clip norm`,
    );
  }
  const f = summary.noisyUnclippedFraction;
  if ((charge.clip_rule === "adaptive") !== (f !== undefined) || (f !== undefined && charge.count_noise_std === null)) {
    throw new RangeError(
      `round ${summary.roundId}: clip rule ${charge.clip_rule} but ${f === undefined ? "no" : "a"} noised unclipped fraction`,
    );
  }
  const m = summary.denominator;
  const mechanism = summary.mechanism ?? "gaussian";
  if (charge.privacy_mode === "central" && mechanism === "distributed-discrete-gaussian")
    throw new RangeError(`round ${summary.roundId} was charged in central mode but ran the distributed mechanism`);
  return {
    clip_norm: c,
    next_clip_norm: f === undefined ? c : summary.nextClipNorm,
    noise_multiplier: charge.noise_multiplier,
    // A checkpoint from before the discrete mechanism names none: it ran the float path.
    ...(charge.privacy_mode === "central" && mechanism !== "distributed-discrete-gaussian" ? { noise: mechanism } : {}),
    unclipped:
      f === undefined
        ? null
        : { noised_fraction: f, noised_count: f * m, expected_clients: m, noise_std: charge.count_noise_std! },
  };
}
