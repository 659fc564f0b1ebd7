/**
 * @module
 * Checks of a decoded update against its round's task: shape and dtype, the clip bit, finiteness, and the L2 norm
 * bound. Pure (no I/O, no clock): the route calls it between decoding and storing.
 *
 * Clip bit (update codec version 2): a round opened with `report_clip_bit` (central mode, adaptive clipping) needs every
 * update to report the device's b = 1[‖Δ‖ ≤ C]; every other round refuses an update that reports one (in local mode
 * the bit is un-noised information about the device's data, so it must never be stored or forwarded).
 *
 * Norm bound, computed in float64:
 * - `central`: the device clips Δ to ‖Δ‖₂ ≤ C (DP-FedAvg, McMahan et al. 2018, arXiv 1710.06963 Alg. 1), so the edge accepts
 *   ‖Δ‖₂ ≤ C·(1 + 1e-4) (the tolerance covers float32 rounding of a clipped vector). An int8 update's norm is that of its
 *   dequantized values, which the device's quantizer keeps ≤ C exactly (@fedge/ml `compressUpdate`).
 * - `local`: the device clips to C, then adds n ~ N(0, σ²I_d) with σ = z·C. ‖·‖₂ is 1-Lipschitz, so by Gaussian concentration
 *   (Vershynin, High-Dimensional Probability, 2018, Thm 5.2.2; E‖n‖ ≤ σ√d) P(‖n‖₂ ≥ σ(√d + t)) ≤ exp(−t²/2). With t = 10 an
 *   honest device is refused with probability below 2·10⁻²², and the edge accepts ‖Δ + n‖₂ ≤ C·(1 + 1e-4) + σ(√d + 10).
 * - `distributed`: never accepted here ({@link assertPlainUploadsAllowed}, before the body is read): a device's input to
 *   a distributed round is its noise share only inside the secure-aggregation sum (routes/secagg.ts), where the edge
 *   sees only masked vectors and their modular sum; a plain update would reach the aggregator on its own.
 * - `none`: no bound without a clip norm (the round is not private; Δ is sent unclipped); with one, as in `central`.
 */
import { FedgeError, int8PayloadNorm, type PrivacyMode } from "@fedge/protocol";

export const NORM_TOLERANCE = 1e-4;
/** The t of the Gaussian tail bound used in local mode. */
export const LOCAL_NOISE_TAIL_T = 10;

export interface UpdateLimits {
  update_length: number;
  update_dtype: "float32" | "int8";
  /** Absent only in privacy mode `none`. */
  clip_norm?: number | undefined;
  privacy_mode: PrivacyMode;
  local_noise_multiplier?: number | undefined;
  /** Whether updates must report the clip bit (else they must not). @default false */
  report_clip_bit?: boolean | undefined;
}

export interface UpdatePayloadView {
  shape: number[];
  /** The decoded clip bit, `null` when not reported. */
  clipBit: 0 | 1 | null;
  payload: { dtype: "float32"; values: Float32Array } | { dtype: "int8"; values: Int8Array; scale: number };
  /**
   * Σ v² of the payload as `decodeUpdate` summed it while validating the values (int8: Σ q²); when given, the norm is
   * taken from it instead of walking the payload a second time.
   */
  sumOfSquares?: number | undefined;
}

/** Largest L2 norm the edge accepts for an update of this round. */
export function normBound(limits: UpdateLimits): number {
  if (limits.clip_norm === undefined) return Infinity;
  const clipped = limits.clip_norm * (1 + NORM_TOLERANCE);
  if (limits.privacy_mode !== "local") return clipped;
  const sigma = (limits.local_noise_multiplier ?? 0) * limits.clip_norm;
  return clipped + sigma * (Math.sqrt(limits.update_length) + LOCAL_NOISE_TAIL_T);
}

/**
 * L2 norm in float64; `NaN`/`Infinity` when a value is not finite. int8: `scale·√(Σ q²)`, the very expression a device's
 * quantizer bounds (@fedge/protocol `int8PayloadNorm`, `quantizeUpdateInt8` with `maxNorm`), so an int8 update clipped
 * and quantized on the device passes here with no tolerance spent on quantization.
 */
export function l2Norm(payload: UpdatePayloadView["payload"]): number {
  if (payload.dtype === "int8") return int8PayloadNorm(payload);
  const v = payload.values;
  let sum = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    sum += x * x;
  }
  return Math.sqrt(sum);
}

/**
 * Throws 409 `conflict` for a round in privacy mode `distributed`: its devices' inputs reach the aggregator only as a
 * secure-aggregation sum, so the plain-update route refuses them before reading a byte of the body.
 */
export function assertPlainUploadsAllowed(roundId: string, limits: Pick<UpdateLimits, "privacy_mode">): void {
  if (limits.privacy_mode === "distributed") {
    throw new FedgeError(
      "conflict",
      409,
      `round ${roundId} is in privacy mode distributed: devices' inputs reach it only through secure aggregation (/v1/rounds/${roundId}/secagg), never as plain updates`,
    );
  }
}

/**
 * Throws a 400 `FedgeError` (`invalid_shape`, `malformed_update` for a clip bit the round does not expect or misses,
 * `non_finite`, `norm_exceeded`) unless the update fits the task; returns its norm.
 */
export function checkUpdateAgainstTask(update: UpdatePayloadView, limits: UpdateLimits): number {
  const { shape, payload } = update;
  if (limits.report_clip_bit && update.clipBit === null) {
    throw new FedgeError(
      "malformed_update",
      400,
      "this round uses adaptive clipping and needs the device's clip bit (update clip-bit field 2 or 3), but the update reports none",
    );
  }
  if (!limits.report_clip_bit && update.clipBit !== null) {
    throw new FedgeError(
      "malformed_update",
      400,
      `this round (privacy mode ${limits.privacy_mode}) does not take a clip bit, but the update reports one; devices send it only when the task sets report_clip_bit`,
    );
  }
  let count = 1;
  for (const d of shape) count *= d;
  if (payload.dtype !== limits.update_dtype) {
    throw new FedgeError("invalid_shape", 400, `this round takes ${limits.update_dtype} updates, got ${payload.dtype}`);
  }
  if (count !== limits.update_length || payload.values.length !== limits.update_length) {
    throw new FedgeError(
      "invalid_shape",
      400,
      `this round takes ${limits.update_length} values, got shape [${shape.join(", ")}] with ${payload.values.length} values`,
    );
  }
  if (payload.dtype === "int8" && !(Number.isFinite(payload.scale) && payload.scale > 0)) {
    throw new FedgeError("non_finite", 400, "the int8 scale is not a finite positive number");
  }
  const norm =
    update.sumOfSquares === undefined
      ? l2Norm(payload)
      : Math.sqrt(update.sumOfSquares) * (payload.dtype === "int8" ? payload.scale : 1);
  // The sum of squares of finite float32 values cannot overflow float64 (d·(3.4e38)² ≪ 1.8e308), so a non-finite norm
  // means a non-finite value.
  if (!Number.isFinite(norm)) throw new FedgeError("non_finite", 400, "the update contains NaN or infinite values");
  const bound = normBound(limits);
  if (norm > bound) {
    throw new FedgeError(
      "norm_exceeded",
      400,
      `update L2 norm ${norm.toPrecision(6)} exceeds this round's bound ${bound.toPrecision(6)} (clip norm ${String(limits.clip_norm)})`,
    );
  }
  return norm;
}

/** Largest encoded size of an update with `length` values: header with the longest ids and rank 8, padding, payload, signature. */
export function maxEncodedUpdateBytes(length: number, dtype: "float32" | "int8"): number {
  const header = 4 + 1 + 1 + 2 + 1 + 1 + 64 + 1 + 80 + 16 + 1 + 4 * 8 + 4 + 4;
  return header + 3 + length * (dtype === "float32" ? 4 : 1) + 64;
}
