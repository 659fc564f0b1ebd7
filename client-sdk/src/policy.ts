/**
 * @module
 * The device's own privacy policy: before it trains on its data for a round, the device checks the round task against
 * limits the APP set (`new FedgeClient({ privacyPolicy })`), so a misconfigured or compromised server cannot make it
 * send weakly protected updates. A refused task throws `PrivacyPolicyError`; nothing is trained on or uploaded.
 *
 * The rules, in order:
 * 1. the task's privacy mode is in `allowedModes` (default central and local: `none` and `distributed` must be
 *    opted into);
 * 2. `local`: a noise multiplier z > 0 is present (z = 0 or a missing z would send the clipped Δ in the clear), at least
 *    `minLocalNoiseMultiplier` when set, and one report costs at most `maxLocalEpsilon` — the analytic Gaussian
 *    mechanism (Balle & Wang 2018, arXiv 1805.06530, Theorem 8) at δ = `maxDelta` for replace-one neighbours
 *    (L2 sensitivity 2C, σ = z·C; @fedge/privacy `localReportEpsilon`). The device computes this itself from z: it needs
 *    no statement from the server;
 * 3. `central`: the task states the population's (ε, δ) (`population_privacy`: what the aggregator's ledger charged and
 *    plans to spend at most), with `planned_epsilon` (else `epsilon`) at most `maxPopulationEpsilon` and δ at most
 *    `maxDelta`. In central mode the device trusts the aggregator with its clipped update anyway; this rule refuses
 *    populations that do not even claim a meaningful guarantee;
 * 4. `distributed`: the task names its secure aggregation (`secure_aggregation`) and its discrete noise
 *    (`distributed`) in the same ring (b = `modulus_bits`, d' = `encoded_length`); the released sum, which holds at
 *    least `noise_shares` shares, of which `noise_shares − 1 − corrupt_devices` are honest devices' other than this
 *    one's own, costs at most `maxLocalEpsilon` for this device's report against the edge, which sees who takes part
 *    and the released sum: one round without subsampling, zero-out neighbours (this device's own share in both
 *    sums), KLS21's RDP bound for the sum of discrete Gaussians (Kairouz, Liu, Steinke 2021, arXiv 2102.06387,
 *    Thm. 1; @fedge/privacy `PrivacyLedger.spentAgainstEdge`) at δ = `maxDelta`; and the same population rule as
 *    central (the guarantee the population claims).
 */
import { distributedSharesOf, localReportEpsilon, PrivacyLedger } from "@fedge/privacy";
import type { RoundTask } from "@fedge/protocol";
import { PrivacyPolicyError } from "./core/errors.ts";
import type { ResolvedPrivacyPolicy } from "./types.ts";

/** Throws `PrivacyPolicyError` when `task` is outside `policy`; see the module header. */
export function checkPrivacyPolicy(task: RoundTask, policy: ResolvedPrivacyPolicy): void {
  const refuse = (reason: ConstructorParameters<typeof PrivacyPolicyError>[0], message: string): never => {
    throw new PrivacyPolicyError(reason, task.round_id, message);
  };
  const mode = task.privacy_mode;
  if (!(policy.allowedModes as readonly string[]).includes(mode)) {
    refuse(
      "mode_not_allowed",
      `privacy mode ${JSON.stringify(mode)} is not in the allowed modes [${policy.allowedModes.join(", ")}]` +
        (mode === "none" ? ' (a non-private round: allow it explicitly with allowedModes including "none")' : ""),
    );
  }
  if (mode === "local") {
    const z = task.local_noise_multiplier;
    if (typeof z !== "number" || !Number.isFinite(z) || z <= 0) {
      refuse("noise_missing", `local mode without a noise multiplier z > 0 (the task has ${String(z)})`);
    }
    if (policy.minLocalNoiseMultiplier !== undefined && z! < policy.minLocalNoiseMultiplier) {
      refuse(
        "noise_too_low",
        `noise multiplier z = ${z} is below the policy's minimum ${policy.minLocalNoiseMultiplier}`,
      );
    }
    const epsilon = localReportEpsilon({ noiseMultiplier: z!, delta: policy.maxDelta, neighbouring: "replace-one" });
    if (!(epsilon <= policy.maxLocalEpsilon)) {
      refuse(
        "epsilon_too_high",
        `one report with z = ${z} costs ε = ${epsilon.toPrecision(4)} (δ = ${policy.maxDelta}, replace-one), more than the policy's maxLocalEpsilon ${policy.maxLocalEpsilon}`,
      );
    }
  }
  if (mode === "distributed") {
    const sa = task.secure_aggregation;
    if (!sa) {
      refuse(
        "secure_aggregation_missing",
        "the distributed-mode task names no secure aggregation (secure_aggregation)",
      );
    }
    const noise = task.distributed;
    if (!noise) refuse("noise_missing", "the distributed-mode task names no discrete noise (distributed)");
    if (noise!.bits !== sa!.modulus_bits || noise!.dimension !== sa!.encoded_length) {
      refuse(
        "noise_mismatch",
        `the noise runs in Z_{2^${noise!.bits}}^${noise!.dimension} but the secure aggregation in Z_{2^${sa!.modulus_bits}}^${sa!.encoded_length}`,
      );
    }
    if (!(noise!.noise_shares >= (noise!.corrupt_devices ?? 0) + 2)) {
      refuse(
        "noise_missing",
        `the released sum of ${noise!.noise_shares} inputs with ${noise!.corrupt_devices ?? 0} colluding devices holds no honest noise share besides this device's own`,
      );
    }
    const epsilon = distributedReportEpsilon(task.round_id, noise!, policy.maxDelta);
    if (!(epsilon <= policy.maxLocalEpsilon)) {
      refuse(
        "epsilon_too_high",
        `the released sum of ${noise!.noise_shares} inputs (${distributedSharesOf(noise!).clients} honest noise shares besides this device's own) costs this report ε = ${epsilon.toPrecision(4)} (δ = ${policy.maxDelta}, one round), more than the policy's maxLocalEpsilon ${policy.maxLocalEpsilon}`,
      );
    }
  }
  if (mode === "central" || mode === "distributed") {
    const p = task.population_privacy;
    if (!p || typeof p.epsilon !== "number" || typeof p.delta !== "number") {
      refuse("epsilon_missing", `the ${mode}-mode task does not state the population's (ε, δ) (population_privacy)`);
    }
    const epsilon = p!.planned_epsilon ?? p!.epsilon;
    if (!(Number.isFinite(epsilon) && epsilon <= policy.maxPopulationEpsilon)) {
      refuse(
        "epsilon_too_high",
        `the population's ε = ${epsilon} (${p!.planned_epsilon !== undefined ? "planned" : "charged"}) is more than the policy's maxPopulationEpsilon ${policy.maxPopulationEpsilon}`,
      );
    }
    if (!(p!.delta > 0 && p!.delta <= policy.maxDelta)) {
      refuse(
        "delta_too_high",
        `the population's δ = ${p!.delta} is more than the policy's maxDelta ${policy.maxDelta}`,
      );
    }
  }
}

/** ε at δ of one distributed round's released sum against the edge (unsubsampled, zero-out; the @fedge/privacy ledger). */
function distributedReportEpsilon(
  roundId: string,
  noise: NonNullable<RoundTask["distributed"]>,
  delta: number,
): number {
  const ledger = new PrivacyLedger({ population: "device-policy", accountant: "rdp" });
  ledger.record({
    roundId,
    sampleRate: 1,
    noiseMultiplier: 1, // unused in mode distributed: the shares below are what is charged
    mode: "distributed",
    openedAt: new Date(0).toISOString(),
    distributed: distributedSharesOf(noise),
  });
  return ledger.spentAgainstEdge(delta);
}
