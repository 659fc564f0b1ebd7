import { describe, expect, it } from "vitest";
import { createAccountant } from "@fedge/privacy";
import { deviceEpsilon, populationPrivacy, recomputedEpsilon } from "./privacy.ts";

const answer = (status: number, body?: unknown): typeof fetch =>
  (async () => new Response(body === undefined ? null : JSON.stringify(body), { status })) as typeof fetch;

describe("populationPrivacy", () => {
  const status = {
    model: "mnist-dp",
    accountant: "rdp",
    budget: { epsilon: 1, delta: 1e-5 },
    epsilon_spent: 0.75,
    epsilon_remaining: 0.25,
    delta: 1e-5,
    rounds: [
      { round_id: "mnist-dp_1", sampling_rate: 0.2, noise_multiplier: 2 },
      { round_id: "mnist-dp_2", sampling_rate: 0.1, noise_multiplier: 1.5 },
    ],
  };

  it("reads the edge's ledger", async () => {
    const p = await populationPrivacy({ baseUrl: "http://edge", population: "mnist-dp", fetch: answer(200, status) });
    expect(p).toMatchObject({ accountant: "rdp", epsilon: 0.75, delta: 1e-5 });
    expect(p.rounds).toEqual([
      { roundId: "mnist-dp_1", sampleRate: 0.2, noiseMultiplier: 2 },
      { roundId: "mnist-dp_2", sampleRate: 0.1, noiseMultiplier: 1.5 },
    ]);
  });

  it("refuses to state an ε the edge does not: an error answer, or a ledger without a budget", async () => {
    const ask = (f: typeof fetch) => populationPrivacy({ baseUrl: "http://edge", population: "mnist-dp", fetch: f });
    await expect(ask(answer(404, { error: { code: "not_found", message: "no such model" } }))).rejects.toThrow(/404/);
    await expect(ask(answer(500))).rejects.toThrow(/500/);
    await expect(ask(answer(200, { ...status, epsilon_spent: null, delta: null }))).rejects.toThrow(/no budget/);
  });

  it("recomputes the ledger's ε with a fresh accountant fed the charged (q, z)", async () => {
    const p = await populationPrivacy({ baseUrl: "http://edge", population: "mnist-dp", fetch: answer(200, status) });
    const acc = createAccountant("rdp");
    acc.step({ noiseMultiplier: 2, sampleRate: 0.2 });
    acc.step({ noiseMultiplier: 1.5, sampleRate: 0.1 });
    expect(recomputedEpsilon(p)).toBeCloseTo(acc.getEpsilon(1e-5), 12);
    // one more round changes it: the recomputation reads the rounds, not the edge's stated ε
    const more = { ...p, rounds: [...p.rounds, { roundId: "mnist-dp_3", sampleRate: 0.2, noiseMultiplier: 2 }] };
    expect(recomputedEpsilon(more)).toBeGreaterThan(recomputedEpsilon(p));
    expect(recomputedEpsilon({ ...p, rounds: [] })).toBe(0);
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
