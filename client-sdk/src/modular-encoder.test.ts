import type { RoundTask } from "@fedge/protocol";
import { describe, expect, it } from "vitest";
import { InvalidInputError } from "./core/errors.ts";
import { plainModularEncoder } from "./modular-encoder.ts";

const task = (bits: number, length: number) =>
  ({ round_id: "m_1", secure_aggregation: { modulus_bits: bits, encoded_length: length } }) as unknown as RoundTask;

describe("plainModularEncoder", () => {
  it("rounds x · scale and wraps negatives into Z_{2^b}", () => {
    const out = plainModularEncoder(100)(Float32Array.of(0.5, -0.5, 0.004, -0.013, 0), task(8, 5));
    expect(Array.from(out)).toEqual([50, 256 - 50, 0, 255, 0]);
  });

  it("decodes a modular sum back to the fixed-point sum while it does not wrap", () => {
    const enc = plainModularEncoder(2 ** 10);
    const a = Float32Array.of(0.25, -0.75, 0.1);
    const b = Float32Array.of(-0.5, -0.125, 0.3);
    const bits = 16;
    const sum = enc(a, task(bits, 3)).map((v, i) => (v + enc(b, task(bits, 3))[i]!) % 2 ** bits);
    const signed = Array.from(sum, (v) => (v >= 2 ** (bits - 1) ? v - 2 ** bits : v) / 2 ** 10);
    expect(signed[0]).toBeCloseTo(-0.25, 3);
    expect(signed[1]).toBeCloseTo(-0.875, 3);
    expect(signed[2]).toBeCloseTo(0.4, 2);
  });

  it("refuses a bad scale, a task without secure aggregation, and an update longer than d'", () => {
    expect(() => plainModularEncoder(0)).toThrow(InvalidInputError);
    expect(() => plainModularEncoder(Number.NaN)).toThrow(InvalidInputError);
    const enc = plainModularEncoder(10);
    expect(() => enc(Float32Array.of(1, 2, 3, 4), task(8, 3))).toThrow(InvalidInputError);
    // a shorter update is zero-padded to the round's d' (the rotation's padding)
    expect(Array.from(enc(Float32Array.of(1, 2), task(8, 4)))).toEqual([10, 20, 0, 0]);
    expect(() => enc(Float32Array.of(1), { round_id: "m_1" } as unknown as RoundTask)).toThrow(InvalidInputError);
  });
});
