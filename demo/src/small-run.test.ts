import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend, type Backend } from "@fedge/gpu-node";
import { chacha20Stream } from "@fedge/privacy";
import { SMALL_RUN, SMALL_RUN_MARGIN_SDS, smallRunMargins } from "./small-run.ts";

/** Draw k's coins and noise: a ChaCha20 stream keyed by k, so that every run of this test replays the same draws. */
const drawOf = (k: number) => chacha20Stream(new Uint8Array(32).fill(k + 1));

let backend: Backend;
beforeAll(async () => {
  backend = await createBackend({ prefer: "cpu", log: () => undefined });
});
afterAll(async () => {
  await backend?.dispose();
});

/** Replayed draws: few, to stay cheap; their sample sd is within about ±25% of the true one. */
const DRAWS = 8;
/** The bar the replayed draws are held to: the selection's, less the error of an 8-draw sd (5 / 1.25). */
const BAR_SDS = SMALL_RUN_MARGIN_SDS / 1.25;

describe("the e2e demo's small run (SMALL_RUN)", () => {
  // On these draws SMALL_RUN's margins are +1.44 to +3.00 points (4.8 sd); the earlier setting (100 devices, q = 0.5)
  // fails this on the same draws: +1.25 to +2.87 (3.5 sd).
  it(`beats the public-only model on the validation pool on every replayed draw, by ${BAR_SDS} sds of its noise`, async () => {
    const m = await smallRunMargins({ backend, setting: SMALL_RUN, draws: DRAWS, randomOf: drawOf });
    const shown = `margins ${m.margins.map((x) => (x * 100).toFixed(2)).join(", ")} points over (a) ${m.publicOnly}`;
    for (const x of m.margins) expect(x, shown).toBeGreaterThan(0);
    expect(m.mean, shown).toBeGreaterThan(BAR_SDS * m.sd);
  }, 400_000);
});
