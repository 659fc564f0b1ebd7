/**
 * @module
 * The no-noise test mode of distributed rounds: each clipped value x becomes round(x · scale) mod 2^b, zero-padded to
 * the round's d'. It adds no noise share, so the sum it feeds secure aggregation is exact (what the tests of secure
 * aggregation compare against) but this device adds none of the distributed discrete Gaussian (Kairouz, Liu, Steinke
 * 2021) the round was charged for; `participate()` uses that encoder unless told otherwise. With n devices and
 * ‖Δ‖₂ ≤ C, the modular sum decodes without wrapping while n · C · scale < 2^(b−1).
 */
import type { RoundTask } from "@fedge/protocol";
import { InvalidInputError } from "./core/errors.ts";

/** `round(x · scale) mod 2^b` per value (a `SecAggEncoder`); `scale` > 0 is the fixed-point step's inverse. */
export function plainModularEncoder(scale: number): (clipped: Float32Array, task: RoundTask) => Uint32Array {
  if (!(typeof scale === "number" && Number.isFinite(scale) && scale > 0)) {
    throw new InvalidInputError("scale", `must be a finite number > 0, got ${String(scale)}`);
  }
  return (clipped: Float32Array, task: RoundTask): Uint32Array => {
    const sa = task.secure_aggregation;
    if (!sa) throw new InvalidInputError("task", "the task has no secure_aggregation");
    if (sa.encoded_length < clipped.length) {
      throw new InvalidInputError(
        "task",
        `plainModularEncoder keeps the update's ${clipped.length} values, but the round encodes only ${sa.encoded_length}`,
      );
    }
    const modulus = 2 ** sa.modulus_bits;
    const out = new Uint32Array(sa.encoded_length); // zero-padded to d', as the rotation pads
    for (let i = 0; i < clipped.length; i++) {
      const q = Math.round(clipped[i]! * scale) % modulus;
      out[i] = q < 0 ? q + modulus : q;
    }
    return out;
  };
}
