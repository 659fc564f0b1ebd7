/**
 * @module
 * Whether the aggregator's report of what it released for a round (`RoundRelease`) can be recorded: a pure rule of the
 * round's row. The edge holds a DP round's exact counts, which must never be published; the only counts it may show
 * are the ones the aggregator released with the round's own charged noise (Andrew et al. 2021, arXiv 1905.03871, Alg. 1:
 * the noised unclipped count of adaptive clipping). So a report is recorded only when every number in it is what that
 * mechanism can have released: the round's C and z, the count noised with the round's charged σ_b (on the discrete
 * Gaussian's lattice when it says so), and nothing counted under a fixed clip norm.
 */
import { isDpMode, type RoundRelease } from "@fedge/protocol";
import { fail } from "../../training/result.ts";
import type { Verdict } from "./admission.ts";
import { isCollecting, iso, paramsOf, type RoundRow } from "./rounds.ts";

const OK: Verdict = { ok: true };

/** How far m·(2b̃ − 1) may sit from an integer before a `discrete-gaussian` count is refused (float64 round-off). */
const LATTICE_TOLERANCE = 1e-6;

const invalid = (message: string) => fail("validation_failed", 400, message);

/**
 * `securelyAggregated`: the inputs of a distributed round's released secure-aggregation sum (its reports: such a round
 * accepts no plain uploads), as `aggregateVerdict` counts them.
 */
export function releaseVerdict(r: RoundRow, release: RoundRelease, securelyAggregated?: number): Verdict {
  const params = paramsOf(r);
  if (!isDpMode(params.privacy_mode) || !params.mechanism) {
    return fail(
      "conflict",
      409,
      `round ${r.round_id} is not differentially private (privacy mode ${params.privacy_mode}): it has no release to report`,
    );
  }
  if (isCollecting(r.state)) {
    return fail("conflict", 409, `round ${r.round_id} is still ${r.state}; a release is reported once it is closed`);
  }
  if (r.dp_release !== null) {
    const at = (JSON.parse(r.dp_release) as { reported_at: string }).reported_at;
    return fail("conflict", 409, `round ${r.round_id} already has a release, reported at ${at}`);
  }
  const reports = params.privacy_mode === "distributed" ? (securelyAggregated ?? 0) : r.accepted;
  if (reports < params.min_reports) {
    return fail(
      "conflict",
      409,
      `round ${r.round_id} has fewer reports than its min_reports ${params.min_reports}: it was not aggregated, so nothing was released (closed at ${r.closed_at === null ? "?" : iso(r.closed_at)})`,
    );
  }
  if (release.clip_norm !== params.clip_norm) {
    return invalid(`clip_norm ${release.clip_norm} is not the round's clip norm ${String(params.clip_norm)}`);
  }
  const m = params.mechanism;
  if (release.noise_multiplier !== m.noise_multiplier) {
    return invalid(
      `noise_multiplier ${release.noise_multiplier} is not the z the round was charged (${m.noise_multiplier})`,
    );
  }
  if (params.privacy_mode === "central" && release.noise === undefined) {
    return invalid("a central round's release names the noise its aggregator drew (discrete-gaussian or gaussian)");
  }
  if (params.privacy_mode !== "central" && release.noise !== undefined) {
    return invalid(`in privacy mode ${params.privacy_mode} the aggregator draws no noise: leave noise out`);
  }
  const u = release.unclipped;
  if (m.clip_rule === "fixed") {
    return u === null
      ? OK
      : invalid(
          "the round has a fixed clip norm: its aggregator released no unclipped count, and an un-noised one is refused",
        );
  }
  if (u === null) {
    return invalid("the round has an adaptive clip norm: its release is the noised unclipped count (unclipped)");
  }
  if (u.noise_std !== m.count_noise_std) {
    return invalid(
      `unclipped.noise_std ${u.noise_std} is not the σ_b the round was charged (${String(m.count_noise_std)}): a count without the round's noise is refused`,
    );
  }
  if (release.noise === "discrete-gaussian") {
    // The discrete mechanism noises the integer 2Σ(b_i − ½) with an integer: m·(2b̃ − 1) lies on the integers.
    const k = u.expected_clients * (2 * u.noised_fraction - 1);
    if (Math.abs(k - Math.round(k)) > LATTICE_TOLERANCE * Math.max(1, Math.abs(k))) {
      return invalid("unclipped: a discrete-gaussian release has m·(2·noised_fraction − 1) on the integers");
    }
  }
  return OK;
}
