/**
 * Poisson sampling: each device's coin comes up with probability q, once per round, and repeats answer the same.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { poissonCoin, uniform53 } from "../src/training/sampling.ts";
import { unwrap } from "../src/training/result.ts";
import type { CheckinResponse } from "@fedge/protocol";
import { checkin, createApiKey, openRound, registerDevice, uniqueModel } from "./rounds-helpers.ts";

/** A public key recorded with the direct check-ins below (the route passes the one it verified the check-in under). */
const DEVICE_KEY = "A".repeat(43);

/** The answer without its countdown (which moves with the clock). */
const stable = (a: CheckinResponse) => (a.selected ? a : { ...a, retry_after_s: 0 });

describe("poissonCoin (pure, injected CSPRNG)", () => {
  const words = (a: number, b: number) => (out: Uint32Array) => {
    out[0] = a;
    out[1] = b;
    return out;
  };
  it("maps 53 random bits to [0, 1) and compares with q", () => {
    expect(uniform53(words(0, 0))).toBe(0);
    expect(uniform53(words(0xffffffff, 0xffffffff))).toBe(1 - 2 ** -53);
    expect(uniform53(words(0x80000000, 0))).toBe(0.5);
    expect(poissonCoin(0.5, words(0x7fffffff, 0xffffffff))).toBe(true);
    expect(poissonCoin(0.5, words(0x80000000, 0))).toBe(false);
    expect(poissonCoin(1, words(0xffffffff, 0xffffffff))).toBe(true);
    expect(poissonCoin(0, words(0, 0))).toBe(false);
    expect(() => poissonCoin(1.5, words(0, 0))).toThrow(RangeError);
    expect(() => poissonCoin(NaN, words(0, 0))).toThrow(RangeError);
  });
});

describe("round sampling", () => {
  it("selects each of 300 devices with probability q = 0.3 (within a 5σ binomial bound), stably", async () => {
    const model = uniqueModel("q");
    const round = await openRound(model, { sampling_rate: 0.3 });
    const stub = env.ROUNDS.getByName(model);
    const n = 300;
    const ids = Array.from({ length: n }, (_, i) => `dev_sample${String(i).padStart(6, "0")}`);
    const now = Date.now();
    const checkinAt = async (id: string, at: number) =>
      unwrap(await stub.checkin(id, DEVICE_KEY, "key_sampling", at)).answer;
    const first = await Promise.all(ids.map((id) => checkinAt(id, now)));
    const selected = first.filter((a) => a.selected).length;
    // Binomial(300, 0.3): mean 90, σ = √(300·0.3·0.7) ≈ 7.94; |X − 90| > 5σ has probability < 1e-6.
    const sigma = Math.sqrt(n * 0.3 * 0.7);
    expect(Math.abs(selected - n * 0.3)).toBeLessThan(5 * sigma);
    // Never "the first N": selections are spread over the check-in order (both halves get some).
    const firstHalf = first.slice(0, n / 2).filter((a) => a.selected).length;
    expect(firstHalf).toBeGreaterThan(0);
    expect(selected - firstHalf).toBeGreaterThan(0);

    // Every repeat answers exactly as the first time (same nonce for the selected).
    const again = await Promise.all(ids.map((id) => checkinAt(id, now + 1000)));
    expect(again.map(stable)).toEqual(first.map(stable));
    const nonces = first.flatMap((a) => (a.selected ? [a.task.nonce] : []));
    expect(new Set(nonces).size).toBe(selected);

    const counts = await runInDurableObject(stub, (_i, state) =>
      state.storage.sql
        .exec<{ checked_in: number; selected: number }>(
          "SELECT checked_in, selected FROM rounds WHERE round_id = ?",
          round.round_id,
        )
        .one(),
    );
    expect({ ...counts }).toEqual({ checked_in: n, selected });
  });

  it("answers the same over HTTP on repeat check-ins", async () => {
    const model = uniqueModel("q");
    const { key } = await createApiKey();
    const devices = await Promise.all(Array.from({ length: 12 }, () => registerDevice(key)));
    await openRound(model, { sampling_rate: 0.5 });
    const first = await Promise.all(devices.map((d) => checkin(d, model)));
    const second = await Promise.all(devices.map((d) => checkin(d, model)));
    expect(second.map(stable)).toEqual(first.map(stable));
    for (const a of first) {
      if (!a.selected) expect(a).toMatchObject({ reason: "not_sampled", retry_after_s: expect.any(Number) });
    }
  });
});
