/**
 * A distributed round whose noise shares come from every checked-in device (`DistributedNoise.cohort` =
 * `checked-in`), end to end through the real edge (`wrangler dev`, port 8862): the edge flips each device's Poisson
 * coin as in every DP round, but gives every device that checks in the task, `input: "update"` when its coin selected
 * it and `input: "noise-only"` when not; both kinds of SDK device (`FedgeClient.participate()`) run every SecAgg+
 * stage, the noise-only ones with a zero update through the same encoder. Here the no-noise test mode (the SDK's
 * plain modular encoder) shows what the edge releases: exactly the sum of the SAMPLED devices' encodings mod 2^b,
 * with one sampled and one noise-only device dropping after masking. The edge's ledger charges the round what
 * `PrivacyLedger` charges a checked-in cohort (zero-out, amplified by q); a device's ε against the edge counts the
 * round only when its update went in. A receipt or task whose cohort was tampered with is refused by the SDK before
 * it takes part, a policy that forbids the noise is applied to a noise-only device too, and a device past the round's
 * cap (`secure_aggregation.max_devices`) is told so and leaves no trace.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FedgeAPIError,
  FedgeClient,
  PrivacyPolicyError,
  UntrustedReceiptError,
  memoryStorage,
  plainModularEncoder,
  type ParticipateResult,
} from "@fedge/client";
import { trainableLength } from "@fedge/ml";
import { PrivacyLedger, distributedSharesOf, type DistributedPlan } from "@fedge/privacy";
import type {
  CheckinResponse,
  PopulationPrivacyStatus,
  RoundStatus,
  RoundTask,
  SecAggOutcome,
  SecAggStatus,
} from "@fedge/protocol";
import { decodeVector } from "@fedge/secagg";
import {
  openRound,
  startEdgeFixture,
  toyData,
  uploadToyModel,
  type EdgeFixture,
  type ToyModel,
} from "@fedge/local-edge";
import { distributedRoundFields } from "./helpers/distributed-round.ts";

const PORT = 8862;
const BITS = 24;
const SCALE = 2 ** 12;
const Q = 0.5;
/** n_max: the cohort's cap on check-ins. */
const CAP = 20;
let fx: EdgeFixture;
let toy: ToyModel;
let round: RoundStatus;
let plan: DistributedPlan;

beforeAll(async () => {
  fx = await startEdgeFixture(PORT);
  toy = await uploadToyModel(fx, "cohort-toy");
  const length = trainableLength(toy.params, "all");
  const built = distributedRoundFields(length, {
    bits: BITS,
    noiseMultiplier: 2,
    expectedClients: 10,
    minClients: 4,
    maxClients: CAP,
    cohort: "checked-in",
  });
  plan = built.plan;
  round = await openRound(fx, toy, { ...built.fields, sampling_rate: Q });
}, 240_000);

afterAll(async () => {
  await fx?.stop();
});

function client(fetchImpl?: typeof fetch, policy?: ConstructorParameters<typeof FedgeClient>[0]["privacyPolicy"]) {
  return new FedgeClient({
    baseUrl: fx.url,
    apiKey: fx.apiKey,
    storage: memoryStorage(),
    edgePublicKey: fx.edgePublicKey,
    privacyPolicy: policy ?? { allowedModes: ["distributed"] },
    maxRetries: 0,
    ...(fetchImpl ? { fetch: fetchImpl } : {}),
  });
}

const urlOf = (input: Parameters<typeof fetch>[0]) =>
  typeof input === "string" ? input : input instanceof URL ? input.href : input.url;

/** A device whose network fails for POSTs to the consistency stage once armed: it drops after masking. */
function droppable(): { fetch: typeof fetch; arm(): void } {
  let armed = false;
  return {
    fetch: (input, init) => {
      if (armed && init?.method === "POST" && urlOf(input).endsWith("/secagg/consistency"))
        return Promise.reject(new TypeError("network down"));
      return fetch(input, init);
    },
    arm: () => {
      armed = true;
    },
  };
}

type Answer = {
  receipt: { distributed_noise: Record<string, unknown> };
  task: { distributed: Record<string, unknown> };
  input?: string;
};

/** A fetch that rewrites the edge's check-in answer (an attacker between the device and the edge). */
function rewritingCheckin(edit: (answer: Answer) => void): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    if (!urlOf(input).endsWith("/v1/rounds/checkin") || !res.ok) return res;
    const answer = (await res.json()) as Answer;
    edit(answer);
    return new Response(JSON.stringify(answer), { status: res.status, headers: res.headers });
  };
}

const roundStatus = () => fx.admin<RoundStatus>("GET", `/v1/admin/rounds/${round.round_id}`);

describe("a checked-in cohort through wrangler dev", () => {
  it("every check-in joins; the sum is the sampled devices' alone; the charge, the device views and the refusals hold", async () => {
    const { data, labels } = toyData(toy.sizes, 24, 41);

    // Tampered answers, refused by the SDK before it trains or says anything to the secure aggregation.
    const unsigned = client(
      rewritingCheckin((a) => {
        delete a.receipt.distributed_noise.cohort; // the receipt now claims a sampled cohort's charge
      }),
    );
    await expect(unsigned.participate({ model: toy.name, data, labels })).rejects.toMatchObject({
      name: "UntrustedReceiptError",
      reason: "bad_signature",
    });
    const retold = client(
      rewritingCheckin((a) => {
        delete a.task.distributed.cohort; // the task now runs a sampled cohort, unlike the signed receipt
        delete a.input;
      }),
    );
    const retoldError = await retold.participate({ model: toy.name, data, labels }).catch((e: unknown) => e);
    expect(retoldError).toBeInstanceOf(UntrustedReceiptError);
    expect((retoldError as UntrustedReceiptError).reason).toBe("mismatch");
    // A policy that wants more noise than the round's refuses it, whether the coin asked for its update or not.
    const strict = client(undefined, { allowedModes: ["distributed"], maxLocalEpsilon: 1e-3 });
    await expect(strict.participate({ model: toy.name, data, labels })).rejects.toBeInstanceOf(PrivacyPolicyError);

    // Check in fresh devices until three of each input are there (the coin decides; the cap leaves room for 17).
    // The first device of each input drops after masking.
    const byInput = { update: [] as FedgeClient[], "noise-only": [] as FedgeClient[] };
    const spare: FedgeClient[] = [];
    const dropped = new Set<FedgeClient>();
    while (byInput.update.length < 3 || byInput["noise-only"].length < 3) {
      expect((await roundStatus()).checked_in).toBeLessThan(CAP);
      const net = droppable();
      const c = client(net.fetch);
      const answer: CheckinResponse = await c.checkin(toy.name);
      if (!answer.selected) throw new Error(`a checked-in cohort answered ${JSON.stringify(answer)}`);
      expect(answer.task.distributed?.cohort).toBe("checked-in");
      expect(answer.receipt?.distributed_noise?.cohort).toBe("checked-in");
      const input = answer.input!;
      if (byInput[input].length === 0) {
        net.arm();
        dropped.add(c);
      }
      if (byInput[input].length < 3) byInput[input].push(c);
      else spare.push(c);
    }
    const participants = [...byInput.update, ...byInput["noise-only"]];
    const inputOf = new Map(participants.map((c, i) => [c, i < 3 ? "update" : "noise-only"] as const));

    // The cap: fill the cohort to n_max; the next device is refused and recorded nowhere.
    while ((await roundStatus()).checked_in < CAP) await client().checkin(toy.name);
    const full = await roundStatus();
    const late = client();
    const refused = await late.checkin(toy.name).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FedgeAPIError);
    expect((refused as FedgeAPIError).status).toBe(409);
    expect((refused as FedgeAPIError).code).toBe("round_full");
    const after = await roundStatus();
    expect([after.checked_in, after.selected]).toEqual([full.checked_in, full.selected]);
    expect((await late.edgePrivacyRecord()).populations).toEqual([]);
    expect(await late.privacyReceipts(toy.name)).toEqual([]);

    // Every participant runs the secure aggregation through participate(); the encoder sees what the device inputs.
    const encodedBy = new Map<FedgeClient, { clipped: Float32Array; encoded: Uint32Array }>();
    const runs = Promise.allSettled(
      participants.map((c) =>
        c.participate({
          model: toy.name,
          data,
          labels,
          encoder: (clipped: Float32Array, task: RoundTask) => {
            const encoded = plainModularEncoder(SCALE)(clipped, task);
            encodedBy.set(c, { clipped: Float32Array.from(clipped), encoded });
            return encoded;
          },
          secureAggregation: { pollMs: 150, timeoutMs: 240_000 },
        }),
      ),
    );
    let finished: PromiseSettledResult<ParticipateResult>[] | undefined;
    void runs.then((r) => (finished = r));
    const base = `/v1/admin/rounds/${round.round_id}/secagg`;
    for (const [stage, count] of [
      ["advertise", 6],
      ["share-keys", 6],
      ["masked-input", 6],
      ["consistency", 4],
      ["unmask", 4],
    ] as const) {
      const until = Date.now() + 180_000;
      for (;;) {
        const status = await fx.admin<SecAggStatus>("GET", base);
        if (status.stage === stage && status.answered === count) break;
        if (Date.now() > until || (finished && stage === "advertise")) {
          const why = finished?.map((r) => (r.status === "rejected" ? String(r.reason) : r.status));
          throw new Error(`stuck at ${JSON.stringify(status)} waiting for ${count} in ${stage}: ${String(why)}`);
        }
        await new Promise((r) => setTimeout(r, 150));
      }
      await fx.admin("POST", `${base}/close`);
    }
    const settled = await runs;
    participants.forEach((c, i) => {
      const r = settled[i]!;
      if (dropped.has(c)) expect(r.status).toBe("rejected");
      else {
        expect(r.status).toBe("fulfilled");
        const v = (r as PromiseFulfilledResult<ParticipateResult>).value;
        expect(v.selected && v.status).toBe("aggregated");
        if (v.selected && v.status === "aggregated") {
          expect(v.stats.input).toBe(inputOf.get(c));
          // a noise-only device trains nothing
          if (inputOf.get(c) === "noise-only") expect(v.stats.samples).toBe(0);
          else expect(v.stats.samples).toBe(24);
        }
      }
    });

    // The released sum: all six masked inputs, and exactly the sampled devices' encodings mod 2^b.
    const outcome = await fx.admin<SecAggOutcome>("GET", `${base}/sum`);
    expect(outcome.survivors).toHaveLength(6);
    const length = outcome.encoded_length;
    const want = new Uint32Array(length);
    for (const c of byInput.update) {
      const v = encodedBy.get(c)!.encoded;
      for (let j = 0; j < length; j++) want[j] = (want[j]! + v[j]!) % 2 ** BITS;
    }
    for (const c of byInput["noise-only"]) {
      expect(encodedBy.get(c)!.clipped.every((x) => x === 0)).toBe(true);
      expect(encodedBy.get(c)!.encoded.every((x) => x === 0)).toBe(true);
    }
    const sum = decodeVector(outcome.sum, length, BITS);
    expect(Array.from(sum)).toEqual(Array.from(want));
    expect(sum.some((v) => v !== 0)).toBe(true);

    // The edge's ledger: one checked-in-cohort round, charged as PrivacyLedger charges it (zero-out, amplified by q).
    const status = await fx.admin<PopulationPrivacyStatus>("GET", `/v1/populations/${toy.name}/privacy`);
    const noise = status.rounds.at(-1)!.distributed!;
    expect(noise.cohort).toBe("checked-in");
    const ledger = new PrivacyLedger({ population: toy.name, accountant: "rdp" });
    ledger.record({
      roundId: round.round_id,
      sampleRate: Q,
      noiseMultiplier: 1,
      mode: "distributed",
      openedAt: new Date().toISOString(),
      distributed: distributedSharesOf(noise),
    });
    expect(distributedSharesOf(noise)).toEqual({ ...plan.noiseShares, cohort: "checked-in" });
    expect(status.epsilon_spent).toBeCloseTo(ledger.spent(1e-5), 9);

    // Each device's view: the same population ε; against the edge, only a round whose coin put its update in counts.
    const againstEdge = ledger.spentAgainstEdge(1e-5);
    for (const c of participants) {
      const included = inputOf.get(c) === "update";
      const record = (await c.edgePrivacyRecord()).populations.find((p) => p.model === toy.name)!;
      expect(record.rounds.map((r) => r.update_included)).toEqual([included]);
      expect(record.epsilon).toBeCloseTo(status.epsilon_spent!, 9);
      expect(record.epsilon_against_edge).toBeCloseTo(included ? againstEdge : 0, 9);
      const own = (await c.privacy()).find((p) => p.model === toy.name)!;
      expect(own.epsilon).toBeCloseTo(record.epsilon!, 9);
      expect(own.epsilonAgainstEdge).toBeCloseTo(record.epsilon_against_edge!, 9);
    }
    expect(againstEdge).toBeGreaterThan(status.epsilon_spent!);
    // spare devices checked in (their coins flipped, receipts kept) but never joined: no member of the sum
    for (const c of [...spare, unsigned, retold, strict]) {
      expect(outcome.survivors).not.toContain((await c.register()).deviceId);
    }
  });
});
