import { describe, expect, it } from "vitest";
import { createAccountant, PrivacyLedger } from "@fedge/privacy";
import { deviceEpsilon, populationPrivacy } from "./privacy.ts";

function ledger(rounds: number) {
  const l = new PrivacyLedger({ population: "mnist-dp", accountant: "rdp" });
  for (let i = 1; i <= rounds; i++)
    l.open(
      {
        roundId: `mnist-dp_${i}`,
        sampleRate: 0.2,
        noiseMultiplier: 2,
        mode: "central",
        openedAt: "2026-01-01T00:00:00Z",
      },
      { epsilon: 100, delta: 1e-5 },
    );
  return l.toJSON();
}

const answer = (status: number, body?: unknown): typeof fetch =>
  (async () => new Response(body === undefined ? null : JSON.stringify(body), { status })) as typeof fetch;

describe("populationPrivacy", () => {
  it("reads the edge's ledger when the edge serves it", async () => {
    const p = await populationPrivacy({
      baseUrl: "http://edge",
      population: "mnist-dp",
      delta: 1e-5,
      aggregatorLedger: ledger(3),
      fetch: answer(200, {
        model: "mnist-dp",
        accountant: "pld",
        budget: { epsilon: 1, delta: 1e-5 },
        epsilon_spent: 0.75,
        epsilon_remaining: 0.25,
        delta: 1e-5,
        rounds: [{ round_id: "mnist-dp_1", sampling_rate: 0.2, noise_multiplier: 2 }],
      }),
    });
    expect(p).toMatchObject({ source: "edge", accountant: "pld", epsilon: 0.75, delta: 1e-5 });
    expect(p.rounds).toEqual([{ roundId: "mnist-dp_1", sampleRate: 0.2, noiseMultiplier: 2 }]);
  });

  it("falls back to the aggregator's ledger only while the edge has no such route (404)", async () => {
    const l = ledger(3);
    const p = await populationPrivacy({
      baseUrl: "http://edge",
      population: "mnist-dp",
      delta: 1e-5,
      aggregatorLedger: l,
      fetch: answer(404, { error: { code: "not_found", message: "no route" } }),
    });
    expect(p.source).toBe("aggregator");
    expect(p.epsilon).toBeCloseTo(PrivacyLedger.fromJSON(l).spent(1e-5), 12);
    expect(p.rounds).toHaveLength(3);
    await expect(
      populationPrivacy({
        baseUrl: "http://edge",
        population: "mnist-dp",
        delta: 1e-5,
        aggregatorLedger: l,
        fetch: answer(500),
      }),
    ).rejects.toThrow(/500/);
  });
});

describe("deviceEpsilon", () => {
  const rounds = [1, 2, 3, 4].map((i) => ({ roundId: `r${i}`, sampleRate: 0.2, noiseMultiplier: 2 }));

  it("composes only the rounds the device checked in for", () => {
    const every = deviceEpsilon({ rounds, checkedIn: ["r1", "r2", "r3", "r4"], accountant: "rdp", delta: 1e-5 });
    const some = deviceEpsilon({ rounds, checkedIn: ["r1", "r3"], accountant: "rdp", delta: 1e-5 });
    const acc = createAccountant("rdp");
    acc.step({ noiseMultiplier: 2, sampleRate: 0.2 }, 2);
    expect(some.rounds).toBe(2);
    expect(some.epsilon).toBeCloseTo(acc.getEpsilon(1e-5), 12);
    expect(every.rounds).toBe(4);
    expect(every.epsilon).toBeGreaterThan(some.epsilon);
    expect(deviceEpsilon({ rounds, checkedIn: [], accountant: "rdp", delta: 1e-5 })).toEqual({ epsilon: 0, rounds: 0 });
  });
});
