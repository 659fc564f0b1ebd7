import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { PrivacyLedger } from "@fedge/privacy";
import { signCheckinReceipt, type CheckinReceiptBody, type SignedCheckinReceipt } from "@fedge/protocol/receipt";
import { UntrustedReceiptError } from "./core/errors.ts";
import { epsilonWith, privacySpend } from "./device-accounting.ts";
import { toBase64Url } from "./internal/encoding.ts";
import { ReceiptStore } from "./receipts.ts";
import { memoryStorage } from "./storage/storage.ts";

const edge = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(3));
const DEVICE = "dev_receipttest01";

function receipt(round: number, over: Partial<CheckinReceiptBody> = {}, key = edge.secretKey): SignedCheckinReceipt {
  const body: CheckinReceiptBody = {
    model: "toy",
    round_id: `toy-r${String(round).padStart(6, "0")}`,
    device_id: DEVICE,
    sampling_rate: 0.3,
    noise_multiplier: 1.1,
    count_noise_std: null,
    privacy_mode: "central",
    clip_rule: "fixed",
    delta: 1e-5,
    checked_in_at: new Date(Date.UTC(2026, 0, 1, 0, round)).toISOString(),
    ...over,
  };
  return { ...body, alg: "Ed25519", signature: toBase64Url(signCheckinReceipt(body, key)) };
}

function store(given?: Uint8Array) {
  let reads = 0;
  const s = new ReceiptStore({
    storage: memoryStorage(),
    baseUrl: "http://edge",
    edgePublicKey: given,
    fetchKey: async () => {
      reads++;
      return toBase64Url(edge.publicKey);
    },
  });
  return { s, reads: () => reads };
}

const expected = { model: "toy", deviceId: DEVICE };

describe("ReceiptStore", () => {
  it("verifies under the edge key pinned on first use (one read), keeps and re-verifies", async () => {
    const { s, reads } = store();
    for (const n of [1, 2]) await s.put({ receipt: await s.verify(receipt(n), expected), declined: false });
    expect(reads()).toBe(1);
    expect((await s.list("toy")).map((e) => e.receipt.round_id)).toEqual(["toy-r000001", "toy-r000002"]);
  });

  it("refuses forged, altered and misaddressed receipts with a typed error", async () => {
    const { s } = store(edge.publicKey);
    const forged = receipt(1, {}, nacl.sign.keyPair().secretKey);
    const altered = { ...receipt(1), sampling_rate: 0.01 };
    const cases: [unknown, string][] = [
      [forged, "bad_signature"],
      [altered, "bad_signature"],
      [{ ...receipt(1), signature: "!!" }, "malformed"],
      [receipt(1, { device_id: "dev_someoneelse01" }), "mismatch"],
      [receipt(1, { model: "other" }), "mismatch"],
    ];
    for (const [r, reason] of cases) {
      const err = await s.verify(r, expected).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UntrustedReceiptError);
      expect((err as UntrustedReceiptError).reason).toBe(reason);
    }
    expect(await s.list()).toEqual([]);
  });

  it("ignores a stored receipt that was altered in storage", async () => {
    const { s } = store(edge.publicKey);
    await s.put({ receipt: { ...receipt(1), noise_multiplier: 50 }, declined: false });
    await s.put({ receipt: receipt(2), declined: false });
    expect((await s.list()).map((e) => e.receipt.round_id)).toEqual(["toy-r000002"]);
  });
});

describe("device accounting", () => {
  const rounds = [1, 2, 3, 4].map((n) => receipt(n, n === 3 ? { sampling_rate: 0.6, noise_multiplier: 0.9 } : {}));
  const population = new PrivacyLedger({ population: "toy", accountant: "rdp" });
  for (const r of rounds) {
    population.record({
      roundId: r.round_id,
      sampleRate: r.sampling_rate,
      noiseMultiplier: r.noise_multiplier,
      mode: r.privacy_mode,
      openedAt: r.checked_in_at,
    });
  }

  it("equals the population's ε for a device in every round, less for one in fewer", () => {
    const all = privacySpend(rounds.map((receipt) => ({ receipt, declined: false })));
    expect(all).toEqual([
      {
        model: "toy",
        epsilon: population.spent(1e-5),
        // central rounds: the edge stored the clipped updates, so nothing bounds what it learnt
        epsilonAgainstEdge: null,
        delta: 1e-5,
        accountant: "rdp",
        rounds: 4,
        declinedRounds: 0,
      },
    ]);
    const some = privacySpend(rounds.map((receipt, i) => ({ receipt, declined: i === 2 })))[0]!;
    expect(some).toMatchObject({ rounds: 3, declinedRounds: 1 });
    expect(some.epsilon).toBeGreaterThan(0);
    expect(some.epsilon).toBeLessThan(all[0]!.epsilon);
  });

  it("charges a distributed round its signed discrete noise (KLS21), as the population's ledger does", async () => {
    const noise = { dimension: 8192, noise_shares: 80, share_variance: 28049514, sensitivity_bound: 1402515226 };
    const d = receipt(9, { privacy_mode: "distributed", distributed_noise: noise });
    const kept = await store().s.verify(d, expected); // the noise is signed: the receipt verifies with it
    const ledger = new PrivacyLedger({ population: "toy" });
    ledger.record({
      roundId: d.round_id,
      sampleRate: 0.3,
      noiseMultiplier: 1.1,
      mode: "distributed",
      openedAt: d.checked_in_at,
      // 80 inputs a sum is released with, less the device's own share
      distributed: { dimension: 8192, clients: 79, localVariance: 28049514, sensitivityBound: 1402515226 },
    });
    const [spend] = privacySpend([{ receipt: kept, declined: false }]);
    expect(spend!.epsilon).toBe(ledger.spent(1e-5));
    // against the edge: no amplification by the round's q = 0.3, zero-out with the device's own share (80 shares)
    expect(spend!.epsilonAgainstEdge).toBe(ledger.spentAgainstEdge(1e-5));
    // Another neighbour relation, so neither number bounds the other: here the add/remove charge is the larger (at
    // d' = 8,192 and 79 shares, the device's share leaving the sum costs more than q = 0.3 saves).
    expect(spend!.epsilonAgainstEdge).toBeLessThan(spend!.epsilon);
    const central = privacySpend([{ receipt: receipt(9), declined: false }])[0]!;
    expect(spend!.epsilon).not.toBeCloseTo(central.epsilon, 3); // charged by its noise, not by the nominal z
  });

  it("counts against the edge only the rounds whose coin put the device's update in", async () => {
    const noise = {
      dimension: 8192,
      noise_shares: 80,
      share_variance: 28049514,
      sensitivity_bound: 1402515226,
      cohort: "checked-in" as const,
    };
    const covered = [10, 11, 12].map((r) => receipt(r, { privacy_mode: "distributed", distributed_noise: noise }));
    const { s } = store();
    for (const [i, r] of covered.entries()) {
      await s.put({ receipt: await s.verify(r, expected), declined: false, updateIncluded: i === 1 });
    }
    const kept = await s.list("toy");
    expect(kept.map((e) => e.updateIncluded)).toEqual([false, true, false]);
    const [spend] = privacySpend(kept);
    const ledgerOf = (receipts: SignedCheckinReceipt[]) => {
      const ledger = new PrivacyLedger({ population: "toy" });
      for (const r of receipts) {
        ledger.record({
          roundId: r.round_id,
          sampleRate: 0.3,
          noiseMultiplier: 1.1,
          mode: "distributed",
          openedAt: r.checked_in_at,
          distributed: {
            dimension: 8192,
            clients: 79,
            localVariance: 28049514,
            sensitivityBound: 1402515226,
            cohort: "checked-in",
          },
        });
      }
      return ledger;
    };
    // the population's view: all three rounds (a noise-only device's share is in each sum, charged zero-out)
    expect(spend!.epsilon).toBe(ledgerOf(covered).spent(1e-5));
    expect(spend!.rounds).toBe(3);
    // the edge flips the coins: the two noise-only rounds are independent of the device's data for it
    expect(spend!.epsilonAgainstEdge).toBe(ledgerOf([covered[1]!]).spentAgainstEdge(1e-5));
    // a receipt kept by an older SDK says nothing: counted against the edge, the safe side
    const legacy = privacySpend(kept.map(({ receipt, declined }) => ({ receipt, declined })))[0]!;
    expect(legacy.epsilonAgainstEdge).toBe(ledgerOf(covered).spentAgainstEdge(1e-5));
  });

  it("projects one more round (the filter's test)", () => {
    const after = epsilonWith("toy", rounds.slice(0, 3), rounds[3]!);
    expect(after).toBeCloseTo(population.spent(1e-5), 10);
  });
});
