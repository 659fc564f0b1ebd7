/**
 * Check-in receipts: in every DP round a device checks in for, selected or not, the edge answers with a receipt signed
 * by its own key (FEDGE_EDGE_SIGNING_KEY), whose public key it serves at /.well-known/fedge-edge-key; the device reads
 * what the edge recorded for it at GET /v1/devices/:id/privacy, signed with its own key.
 */
import { describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import {
  EDGE_KEY_PATH,
  devicePrivacySigningBytes,
  fromBase64Url,
  toBase64Url,
  checkinReceiptSigningBytes,
  type CheckinReceipt,
  type DevicePrivacyRecord,
} from "@fedge/protocol";
import {
  PrivacyLedger,
  RdpAccountant,
  distributedNoiseOf,
  distributedRdp,
  distributedSharesOf,
  getPrivacySpent,
  planDistributedDiscreteGaussian,
  poissonSubsampledRdp,
} from "@fedge/privacy";
import {
  ADMIN,
  adminPost,
  call,
  checkin,
  createApiKey,
  errorCode,
  openRound,
  registerDevice,
  roundParams,
  uniqueModel,
  type TestDevice,
} from "./rounds-helpers.ts";

/** The public key of the test seed in vitest.config.ts (32 bytes of 0x2a). */
const EDGE_PUBLIC_KEY = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(42)).publicKey;

/** Checked with tweetnacl, independently of the edge's WebCrypto signer (Ed25519 is deterministic: same bytes). */
function verifies(r: CheckinReceipt): boolean {
  return nacl.sign.detached.verify(checkinReceiptSigningBytes(r), fromBase64Url(r.signature), EDGE_PUBLIC_KEY);
}

function readPrivacy(device: TestDevice, opts: { timestamp?: string; key?: Uint8Array } = {}): Promise<Response> {
  const timestamp = opts.timestamp ?? new Date().toISOString();
  const signature = nacl.sign.detached(
    devicePrivacySigningBytes(device.id, timestamp),
    opts.key ?? device.keys.secretKey,
  );
  return call(`/v1/devices/${device.id}/privacy`, {
    headers: {
      authorization: `Bearer ${device.apiKey}`,
      "x-fedge-timestamp": timestamp,
      "x-fedge-signature": toBase64Url(signature),
    },
  });
}

describe("the edge key", () => {
  it("is served at the well-known route, with CORS for web apps", async () => {
    const res = await call(EDGE_KEY_PATH, { headers: { origin: "https://app.example" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(await res.json()).toEqual({ public_key: toBase64Url(EDGE_PUBLIC_KEY), alg: "Ed25519" });
  });
});

describe("check-in receipts", () => {
  it("come signed in every DP round, selected or not, the same on a repeat", async () => {
    const model = uniqueModel("rcpt");
    const { key } = await createApiKey();
    const device = await registerDevice(key);
    const round = await openRound(model, {
      sampling_rate: 1,
      mechanism: { noise_multiplier: 1.3, clip_rule: "adaptive", count_noise_std: 2 },
    });
    const first = await checkin(device, model);
    expect(first.selected).toBe(true);
    const r = first.receipt!;
    expect(r).toMatchObject({
      model,
      round_id: round.round_id,
      device_id: device.id,
      sampling_rate: 1,
      noise_multiplier: 1.3,
      count_noise_std: 2,
      privacy_mode: "central",
      clip_rule: "adaptive",
      delta: 1e-5,
      alg: "Ed25519",
    });
    expect(verifies(r)).toBe(true);
    expect((await checkin(device, model)).receipt).toEqual(r);
    // Tampering with any signed field breaks it.
    expect(verifies({ ...r, sampling_rate: 0.01 })).toBe(false);
    expect(verifies({ ...r, noise_multiplier: 13 })).toBe(false);
    expect(verifies({ ...r, device_id: "dev_someoneelse0" })).toBe(false);

    // A device the coin did not select still gets one: its loss accrues too.
    await adminPost(`/v1/admin/rounds/${round.round_id}/close`);
    const tiny = await openRound(model, { sampling_rate: 1e-9 });
    const other = await checkin(device, model);
    expect(other).toMatchObject({ selected: false, reason: "not_sampled" });
    expect(other.receipt).toMatchObject({ round_id: tiny.round_id, sampling_rate: 1e-9, clip_rule: "fixed" });
    expect(verifies(other.receipt!)).toBe(true);
  });

  it("are absent without a DP round", async () => {
    const model = uniqueModel("rcpt");
    const { key } = await createApiKey();
    const device = await registerDevice(key);
    expect((await checkin(device, model)).receipt).toBeUndefined();
    await openRound(model, { privacy_mode: "none" });
    const answer = await checkin(device, model);
    expect(answer.selected).toBe(true);
    expect(answer.receipt).toBeUndefined();
  });
});

describe("GET /v1/devices/:id/privacy", () => {
  it("lists the DP rounds the device checked in for, only to the device", async () => {
    const model = uniqueModel("rcpt");
    const { key } = await createApiKey();
    const a = await registerDevice(key);
    const b = await registerDevice(key);
    const r1 = await openRound(model, { sampling_rate: 1 });
    const receipt = (await checkin(a, model)).receipt!;
    await checkin(b, model);
    await adminPost(`/v1/admin/rounds/${r1.round_id}/close`);
    const r2 = await openRound(model, { sampling_rate: 0.5 });
    await checkin(a, model);

    const res = await readPrivacy(a);
    expect(res.status, await res.clone().text()).toBe(200);
    const record = await res.json<DevicePrivacyRecord>();
    expect(record.device_id).toBe(a.id);
    expect(record.populations).toHaveLength(1);
    expect(record.populations[0]!.model).toBe(model);
    expect(record.populations[0]!.rounds).toEqual([
      {
        round_id: r1.round_id,
        checked_in_at: receipt.checked_in_at,
        sampling_rate: 1,
        noise_multiplier: 1,
        count_noise_std: null,
        privacy_mode: "central",
        clip_rule: "fixed",
        distributed: null,
        update_included: true,
      },
      expect.objectContaining({ round_id: r2.round_id, sampling_rate: 0.5 }),
    ]);
    const forB = await (await readPrivacy(b)).json<DevicePrivacyRecord>();
    expect(forB.populations[0]!.rounds.map((r) => r.round_id)).toEqual([r1.round_id]);

    expect(await errorCode(await readPrivacy(a, { key: b.keys.secretKey }))).toBe("bad_signature");
    const stale = new Date(Date.now() - 3_600_000).toISOString();
    expect(await errorCode(await readPrivacy(a, { timestamp: stale }))).toBe("stale_timestamp");
    const stranger = await createApiKey();
    expect(await errorCode(await readPrivacy({ ...a, apiKey: stranger.key }))).toBe("device_not_found");
  });
});

describe("GET /v1/devices/:id/privacy in distributed rounds", () => {
  // 10 devices expected, sums released from 6 inputs on, a tenth of a roster of up to 20 may collude: 6 − 1 − 2 = 3
  // honest shares besides the device's own protect it.
  const plan = planDistributedDiscreteGaussian({
    bits: 16,
    length: 8,
    clipNorm: 1,
    noiseMultiplier: 1.5,
    expectedClients: 10,
    minClients: 6,
    maxClients: 20,
    corruptFraction: 0.1,
  });
  const noise = distributedNoiseOf(plan);

  /** The device's own accounting from its receipts, as the SDK's client.privacy() runs it (RDP, receipts' shares). */
  function fromReceipts(model: string, receipts: CheckinReceipt[]): number {
    const ledger = new PrivacyLedger({ population: model, accountant: "rdp" });
    for (const r of receipts) {
      ledger.record({
        roundId: r.round_id,
        sampleRate: r.sampling_rate,
        noiseMultiplier: r.noise_multiplier,
        mode: r.privacy_mode,
        openedAt: r.checked_in_at,
        ...(r.distributed_noise ? { distributed: distributedSharesOf(r.distributed_noise) } : {}),
      });
    }
    return ledger.spent(receipts[0]!.delta);
  }

  it("states the noise that protected the device, and its ε equals the population's and its receipts'", async () => {
    const model = uniqueModel("ddpdev");
    const { key } = await createApiKey();
    const a = await registerDevice(key);
    const b = await registerDevice(key);
    const receiptsA: CheckinReceipt[] = [];
    const receiptsB: CheckinReceipt[] = [];
    const mechanism = { noise_multiplier: 1.5, clip_rule: "fixed" as const, distributed: noise };
    const d1 = await openRound(model, { privacy_mode: "distributed", sampling_rate: 0.5, mechanism });
    receiptsA.push((await checkin(a, model)).receipt!);
    await adminPost(`/v1/admin/rounds/${d1.round_id}/close`);
    const c1 = await openRound(model, { sampling_rate: 0.3 });
    receiptsA.push((await checkin(a, model)).receipt!);
    receiptsB.push((await checkin(b, model)).receipt!);
    await adminPost(`/v1/admin/rounds/${c1.round_id}/close`);
    const d2 = await openRound(model, { privacy_mode: "distributed", sampling_rate: 0.5, mechanism });
    receiptsA.push((await checkin(a, model)).receipt!);
    receiptsB.push((await checkin(b, model)).receipt!);
    // the receipts sign the colluding-device count the charge depends on
    expect(receiptsA[0]!.distributed_noise).toEqual({
      dimension: noise.dimension,
      noise_shares: 6,
      share_variance: noise.share_variance,
      sensitivity_bound: noise.sensitivity_bound,
      corrupt_devices: 2,
    });
    expect(receiptsA.every(verifies)).toBe(true);

    const record = await (await readPrivacy(a)).json<DevicePrivacyRecord>();
    const entry = record.populations[0]!;
    expect(entry.rounds.map((r) => r.round_id)).toEqual([d1.round_id, c1.round_id, d2.round_id]);
    expect(entry.rounds[1]!.distributed).toBeNull();
    const protectedBy = entry.rounds[0]!.distributed!;
    expect(protectedBy).toEqual({
      ...noise,
      guaranteed_shares: 3,
      guaranteed_noise_std: Math.sqrt(3 * noise.share_variance) / noise.scale,
    });
    expect(entry.rounds[2]!.distributed).toEqual(protectedBy);
    // The device in every round spends the population's ε, which its receipts reproduce.
    const population = await (await call(`/v1/populations/${model}/privacy`)).json<{ epsilon_spent: number }>();
    expect(entry.delta).toBe(1e-5);
    expect(entry.epsilon).toBe(population.epsilon_spent);
    expect(fromReceipts(model, receiptsA)).toBe(entry.epsilon);
    // One that missed a round spends less, and the same on both sides.
    const forB = (await (await readPrivacy(b)).json<DevicePrivacyRecord>()).populations[0]!;
    expect(forB.rounds.map((r) => r.round_id)).toEqual([c1.round_id, d2.round_id]);
    expect(forB.epsilon).toBe(fromReceipts(model, receiptsB));
    expect(forB.epsilon!).toBeLessThan(entry.epsilon!);

    // Neither the protected device's own share nor the colluders' is counted: with them, ε would be lower.
    const counting = (clients: number) => {
      const ledger = new PrivacyLedger({ population: model, accountant: "rdp" });
      receiptsA.forEach((r, i) =>
        ledger.record({
          roundId: `${i}`,
          sampleRate: r.sampling_rate,
          noiseMultiplier: r.noise_multiplier,
          mode: r.privacy_mode,
          openedAt: r.checked_in_at,
          ...(r.distributed_noise ? { distributed: { ...plan.noiseShares, clients } } : {}),
        }),
      );
      return ledger.spent(1e-5);
    };
    expect(entry.epsilon).toBe(counting(3));
    expect(counting(4)).toBeLessThan(entry.epsilon!);
    expect(counting(6)).toBeLessThan(counting(4));
  });

  it("states the ε against the edge beside the population's: no amplification, zero-out, none after a central round", async () => {
    const model = uniqueModel("ddpedge");
    const { key } = await createApiKey();
    const a = await registerDevice(key);
    const b = await registerDevice(key);
    const receiptsA: CheckinReceipt[] = [];
    const receiptsB: CheckinReceipt[] = [];
    // the rounds whose coin put the device's update in: the only ones the edge, which flips the coins, learns from
    const includedA: CheckinReceipt[] = [];
    const includedB: CheckinReceipt[] = [];
    const keep = (answer: Awaited<ReturnType<typeof checkin>>, all: CheckinReceipt[], included: CheckinReceipt[]) => {
      all.push(answer.receipt!);
      if (answer.selected) included.push(answer.receipt!);
    };
    const mechanism = { noise_multiplier: 1.5, clip_rule: "fixed" as const, distributed: noise };
    const d1 = await openRound(model, { privacy_mode: "distributed", sampling_rate: 0.5, mechanism });
    keep(await checkin(a, model), receiptsA, includedA);
    await adminPost(`/v1/admin/rounds/${d1.round_id}/close`);
    const d2 = await openRound(model, { privacy_mode: "distributed", sampling_rate: 0.5, mechanism });
    keep(await checkin(a, model), receiptsA, includedA);
    keep(await checkin(b, model), receiptsB, includedB);
    await adminPost(`/v1/admin/rounds/${d2.round_id}/close`);

    const ledgerOf = (receipts: CheckinReceipt[]) => {
      const ledger = new PrivacyLedger({ population: model, accountant: "rdp" });
      for (const r of receipts) {
        ledger.record({
          roundId: r.round_id,
          sampleRate: r.sampling_rate,
          noiseMultiplier: r.noise_multiplier,
          mode: r.privacy_mode,
          openedAt: r.checked_in_at,
          distributed: distributedSharesOf(r.distributed_noise!),
        });
      }
      return ledger;
    };
    const population = await (
      await call(`/v1/populations/${model}/privacy`)
    ).json<{ epsilon_spent: number; epsilon_against_edge: number | null }>();
    const entryA = (await (await readPrivacy(a)).json<DevicePrivacyRecord>()).populations[0]!;
    const entryB = (await (await readPrivacy(b)).json<DevicePrivacyRecord>()).populations[0]!;
    // against the edge: the rounds whose coin included the device, as its receipts and coins give them
    const againstEdge = (included: CheckinReceipt[]) =>
      included.length === 0 ? 0 : ledgerOf(included).spentAgainstEdge(1e-5);
    expect(entryA.rounds.map((r) => r.update_included)).toEqual(receiptsA.map((r) => includedA.includes(r)));
    expect(entryA.epsilon_against_edge).toBe(againstEdge(includedA));
    expect(entryB.epsilon_against_edge).toBe(againstEdge(includedB));
    // the population's is every round's: what the edge learns of a device whose coin always said yes
    expect(population.epsilon_against_edge).toBe(ledgerOf(receiptsA).spentAgainstEdge(1e-5));
    expect(entryA.epsilon_against_edge!).toBeLessThanOrEqual(population.epsilon_against_edge!);
    // it is the zero-out bound of the 3 honest shares and the device's own (4), at q = 1 for each included round
    const orders = new RdpAccountant().orders;
    const zeroOut = orders.map(
      (alpha) => includedA.length * distributedRdp({ ...plan.noiseShares, clients: 4 }, alpha),
    );
    expect(entryA.epsilon_against_edge).toBeCloseTo(
      includedA.length === 0 ? 0 : getPrivacySpent(orders, zeroOut, 1e-5).epsilon,
      10,
    );
    // and the population's charge is add/remove: above what the mean shift of 3 shares alone would give
    const meanShift = poissonSubsampledRdp(0.5, orders, (alpha) => distributedRdp(plan.noiseShares, alpha));
    expect(population.epsilon_spent).toBe(ledgerOf(receiptsA).spent(1e-5));
    expect(population.epsilon_spent).toBeGreaterThan(
      getPrivacySpent(
        orders,
        meanShift.map((v) => 2 * v),
        1e-5,
      ).epsilon,
    );

    // a central round that selects the device: the edge stores its clipped update, so no ε bounds what it learnt
    await openRound(model, { sampling_rate: 1 });
    await checkin(a, model);
    const after = await (
      await call(`/v1/populations/${model}/privacy`)
    ).json<{ epsilon_against_edge: number | null }>();
    expect(after.epsilon_against_edge).toBeNull();
    expect((await (await readPrivacy(a)).json<DevicePrivacyRecord>()).populations[0]!.epsilon_against_edge).toBeNull();
    expect((await (await readPrivacy(b)).json<DevicePrivacyRecord>()).populations[0]!.epsilon_against_edge).toBe(
      entryB.epsilon_against_edge,
    );
  });

  it("refuses a distributed round whose threshold leaves no honest share besides the device's own (400, nothing charged)", async () => {
    const model = uniqueModel("ddpbad");
    const c1 = await openRound(model, { sampling_rate: 0.5 });
    await adminPost(`/v1/admin/rounds/${c1.round_id}/close`);
    const ledger = async () => (await call(`/v1/populations/${model}/privacy`)).json<{ rounds: unknown[] }>();
    const before = await ledger();
    for (const bad of [
      { ...noise, corrupt_devices: 5 }, // 6 − 1 − 5 = 0
      { ...noise, noise_shares: 2, corrupt_devices: 1 },
      { ...noise, noise_shares: 1, corrupt_devices: undefined },
    ]) {
      const body = roundParams(model, {
        privacy_mode: "distributed",
        sampling_rate: 0.5,
        mechanism: { noise_multiplier: 1.5, clip_rule: "fixed", distributed: bad },
      });
      const res = await call("/v1/admin/rounds", {
        method: "POST",
        headers: { ...ADMIN, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(400);
      expect(await res.text()).toMatch(/corrupt_devices \+ 2/);
    }
    expect(await ledger()).toEqual(before);
  });
});
