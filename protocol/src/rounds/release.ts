/**
 * @module
 * What the aggregator released for a DP round, reported to the edge once it finished the round
 * (`POST /v1/admin/rounds/:id/release`), so the operator dashboard can show a DP round's counts without ever holding an
 * exact one.
 *
 * Every value is post-processing of the round's own charged mechanism (no extra ε): the clip norm C is public (it was
 * in the task), z is the charged multiplier, and under adaptive clipping the count is the one the aggregator already
 * released to move C (Andrew et al. 2021, arXiv 1905.03871, Alg. 1 and §3.1 Thm. 1): b̃ = (Σ(b_i − ½) + N(0, σ_b²))/m + ½
 * (in central mode with the discrete Gaussian, the noise on the integer 2Σ(b_i − ½) is N_Z(0, (2σ_b)²)). The estimate of
 * the unclipped count is m·b̃; its noise has standard deviation σ_b. DP-FedAvg divides by the fixed m = q·N (McMahan et al.
 * 2018, arXiv 1710.06963 §2), so no count of reports is released, and none may be reported.
 */
import { z } from "zod";
import { IsoDateTime } from "../common.ts";

/** The central mechanisms an aggregator may have run (`discrete-gaussian` on the integer grid, or the float path). */
export const CentralNoise = z.enum(["discrete-gaussian", "gaussian"]);
export type CentralNoise = z.infer<typeof CentralNoise>;

/** The adaptive clipping release: the noised fraction and count of updates that needed no clipping, with their noise. */
export const NoisedUnclippedCount = z
  .object({
    /** b̃, the noised fraction of unclipped updates the aggregator moved C with. */
    noised_fraction: z.number().finite(),
    /** m·b̃: the noised estimate of how many updates needed no clipping (never an exact count). */
    noised_count: z.number().finite(),
    /** m = q·N, the fixed expected number of reports the fraction divides by (public: set by the aggregator). */
    expected_clients: z.number().positive().finite(),
    /** σ_b, the standard deviation of the noise on the count (the round's charged `count_noise_std`). */
    noise_std: z.number().positive().finite(),
  })
  .strict()
  .refine(
    (u) =>
      Math.abs(u.noised_count - u.noised_fraction * u.expected_clients) <= 1e-9 * Math.max(1, Math.abs(u.noised_count)),
    { message: "noised_count must be noised_fraction × expected_clients", path: ["noised_count"] },
  )
  .meta({ id: "NoisedUnclippedCount" });
export type NoisedUnclippedCount = z.infer<typeof NoisedUnclippedCount>;

const releaseFields = {
  /** The clip norm C the round's updates were clipped to (the task's `clip_norm`). */
  clip_norm: z.number().positive().finite(),
  /** The clip norm the next round uses (C again with a fixed clip rule). */
  next_clip_norm: z.number().positive().finite(),
  /** z, the total noise multiplier the round was charged (the round's `mechanism.noise_multiplier`). */
  noise_multiplier: z.number().positive().finite(),
  /** Central mode: the noise the aggregator drew; absent in local mode (the devices drew it). */
  noise: CentralNoise.optional(),
  /** Adaptive clipping only: the noised unclipped count; null with a fixed clip norm (nothing counted). */
  unclipped: NoisedUnclippedCount.nullable(),
};

const fixedClipKeepsC = {
  check: (r: { unclipped: NoisedUnclippedCount | null; clip_norm: number; next_clip_norm: number }) =>
    r.unclipped !== null || r.next_clip_norm === r.clip_norm,
  message: "with a fixed clip norm (no unclipped count released) next_clip_norm must equal clip_norm",
};

/** `POST /v1/admin/rounds/:id/release`: what the aggregator released for a DP round it finished. */
export const RoundRelease = z
  .object(releaseFields)
  .strict()
  .refine(fixedClipKeepsC.check, { message: fixedClipKeepsC.message, path: ["next_clip_norm"] })
  .meta({ id: "RoundRelease" });
export type RoundRelease = z.infer<typeof RoundRelease>;

/** A round's release as the edge stores and lists it: the report plus when the edge recorded it. */
export const RecordedRoundRelease = z
  .object({ ...releaseFields, reported_at: IsoDateTime })
  .meta({ id: "RecordedRoundRelease" });
export type RecordedRoundRelease = z.infer<typeof RecordedRoundRelease>;
