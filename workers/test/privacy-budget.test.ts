/**
 * The population's privacy budget at the edge: the admin sets (ε_max, δ); every DP round is charged (q, z, σ_b, mode,
 * clip rule) by the RoundCoordinator in the transaction that opens it, with the shared accountant of @fedge/privacy;
 * a charge over the budget is refused (409 budget_exceeded) for every credential and changes nothing; charges stay;
 * DP rounds keep Poisson sampling (no max_reports, min_reports 1); the public ledger holds no device counts.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import {
  fromBase64Url,
  signAggregatorRequest,
  toBase64Url,
  verifyCheckinReceipt,
  type PopulationPrivacyStatus,
  type RoundStatus,
} from "@fedge/protocol";
import { PrivacyLedger, createAccountant, planDistributedDiscreteGaussian } from "@fedge/privacy";
import {
  ADMIN,
  TEST_MECHANISM,
  adminPost,
  call,
  checkin,
  createApiKey,
  errorCode,
  makeUpdate,
  openRound,
  putBudget,
  registerDevice,
  roundParams,
  taskFor,
  uniqueModel,
  upload,
  uploadOk,
} from "./rounds-helpers.ts";

/** ε of `steps` rounds of (q = 1, z = 1) at δ = 1e-5 with the RDP accountant. */
function epsilonAfter(steps: number, accountant: "rdp" | "pld" = "rdp"): number {
  const acc = createAccountant(accountant);
  acc.step({ noiseMultiplier: 1, sampleRate: 1 }, steps);
  return acc.getEpsilon(1e-5);
}

/** A budget that admits exactly `rounds` rounds of (q = 1, z = 1). */
function budgetFor(rounds: number) {
  return { epsilon: (epsilonAfter(rounds) + epsilonAfter(rounds + 1)) / 2, delta: 1e-5 };
}

function postRound(body: Record<string, unknown>, headers: Record<string, string> = ADMIN): Promise<Response> {
  return call("/v1/admin/rounds", {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function privacy(model: string, headers: Record<string, string> = {}): Promise<PopulationPrivacyStatus> {
  const res = await call(`/v1/populations/${model}/privacy`, { headers });
  expect(res.status, await res.clone().text()).toBe(200);
  return res.json<PopulationPrivacyStatus>();
}

/** Every row of the coordinator's rounds and ledger tables, to prove a refusal wrote nothing. */
async function tables(model: string): Promise<unknown> {
  return runInDurableObject(env.ROUNDS.getByName(model), (_i, state) => {
    const sql = state.storage.sql;
    const all = (table: string) =>
      sql
        .exec(`SELECT * FROM ${table}`)
        .toArray()
        .map((r) => ({ ...r }));
    return {
      rounds: all("rounds"),
      charges: all("privacy_charges"),
      budget: all("privacy_budget"),
    };
  });
}

const aggregator = nacl.sign.keyPair();

async function trustAggregator(): Promise<void> {
  const res = await call(`/v1/admin/aggregator-keys/${toBase64Url(aggregator.publicKey)}`, {
    method: "PUT",
    headers: ADMIN,
  });
  expect(res.status).toBe(201);
}

async function signedHeaders(method: string, path: string, body?: unknown): Promise<Record<string, string>> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return signAggregatorRequest({ method, host: "edge", path, body: text, secretKey: aggregator.secretKey });
}

describe("setting a population's budget", () => {
  it("takes the admin token only: not the aggregator's signature, not an API key, not nobody", async () => {
    const model = uniqueModel("bud");
    await trustAggregator();
    const path = `/v1/admin/populations/${model}/privacy-budget`;
    const body = { epsilon: 4, delta: 1e-5 };
    const bySignature = await call(path, {
      method: "PUT",
      headers: { ...(await signedHeaders("PUT", path, body)), "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(bySignature.status).toBe(403);
    expect(await errorCode(bySignature)).toBe("forbidden");
    const { key } = await createApiKey();
    const byKey = await call(path, {
      method: "PUT",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(byKey.status).toBe(403);
    expect((await call(path, { method: "PUT", body: JSON.stringify(body) })).status).toBe(401);
    expect((await privacy(model)).budget).toBeNull();

    const set = await putBudget(model, body);
    expect(set.status).toBe(200);
    expect(await set.json()).toEqual({
      model,
      accountant: "rdp",
      budget: { epsilon: 4, delta: 1e-5 },
      epsilon_spent: 0,
      epsilon_remaining: 4,
      epsilon_against_edge: 0,
      delta: 1e-5,
      rounds: [],
    });
  });

  it("refuses a bad budget with 400 and changes nothing", async () => {
    const model = uniqueModel("bud");
    for (const bad of [
      { epsilon: 0, delta: 1e-5 },
      { epsilon: -1, delta: 1e-5 },
      { epsilon: 1, delta: 1 },
      { epsilon: 1, delta: 0 },
      { epsilon: 1, delta: 1e-5, accountant: "gdp" },
      { epsilon: 1, delta: 1e-5, extra: true },
      { epsilon: 1 },
    ]) {
      const res = await putBudget(model, bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(await errorCode(res)).toBe("validation_failed");
    }
    expect((await privacy(model)).budget).toBeNull();
  });

  it("is documented in the OpenAPI document with the public ledger", async () => {
    const doc = await (await call("/openapi.json")).json<{ paths: Record<string, Record<string, unknown>> }>();
    expect(Object.keys(doc.paths["/v1/admin/populations/{name}/privacy-budget"]!)).toEqual(["put"]);
    expect(Object.keys(doc.paths["/v1/populations/{name}/privacy"]!)).toEqual(["get"]);
    expect(JSON.stringify(doc.paths["/v1/admin/rounds"])).toContain("budget_exceeded");
  });
});

describe("opening a DP round charges the budget", () => {
  it("refuses a DP round without its mechanism, with max_reports, or with min_reports above 1 (400, nothing written)", async () => {
    const model = uniqueModel("mech");
    await putBudget(model, { epsilon: 100, delta: 1e-5 });
    const before = await tables(model);
    const { mechanism: _m, ...noMechanism } = roundParams(model);
    const cases: [Record<string, unknown>, RegExp][] = [
      [noMechanism, /mechanism/],
      [roundParams(model, { max_reports: 10 }), /max_reports/],
      [roundParams(model, { min_reports: 2 }), /min_reports/],
      [roundParams(model, { mechanism: { noise_multiplier: 0, clip_rule: "fixed" } }), /noise_multiplier/],
      [roundParams(model, { mechanism: { noise_multiplier: 1, clip_rule: "adaptive" } }), /count_noise_std/],
      [
        roundParams(model, { mechanism: { noise_multiplier: 1, clip_rule: "adaptive", count_noise_std: 0.4 } }),
        /count_noise_std/,
      ],
      [
        roundParams(model, {
          privacy_mode: "local",
          local_noise_multiplier: 0.5,
          mechanism: { noise_multiplier: 2, clip_rule: "fixed" },
        }),
        /local_noise_multiplier/,
      ],
      [roundParams(model, { privacy_mode: "none", mechanism: TEST_MECHANISM }), /mechanism/],
    ];
    for (const [body, message] of cases) {
      const res = await postRound(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const envelope = await res.json<{ error: { code: string; message: string } }>();
      expect(envelope.error.code).toBe("validation_failed");
      expect(envelope.error.message).toMatch(message);
    }
    expect(await tables(model)).toEqual(before);
  });

  it("refuses a DP round of a population without a budget (409 budget_exceeded, nothing written)", async () => {
    const model = uniqueModel("nobud");
    const res = await postRound(roundParams(model));
    expect(res.status).toBe(409);
    const envelope = await res.json<{ error: { code: string; message: string } }>();
    expect(envelope.error).toMatchObject({ code: "budget_exceeded" });
    expect(envelope.error.message).toMatch(/no privacy budget/);
    expect(await tables(model)).toEqual({ rounds: [], charges: [], budget: [] });
  });

  it("charges every opened round; the one that would pass ε_max is refused for every credential and writes nothing", async () => {
    const model = uniqueModel("charge");
    await trustAggregator();
    const budget = budgetFor(2);
    expect((await putBudget(model, budget)).status).toBe(200);

    // Round 1 is abandoned (closed, never aggregated): it stays charged.
    const r1 = await openRound(model);
    expect(r1.params.mechanism).toEqual(TEST_MECHANISM);
    expect((await adminPost(`/v1/admin/rounds/${r1.round_id}/close`)).status).toBe(200);
    // Round 2 is opened by the aggregator's signed request.
    const body2 = roundParams(model);
    const r2 = await postRound(body2, await signedHeaders("POST", "/v1/admin/rounds", body2));
    expect(r2.status, await r2.clone().text()).toBe(201);
    const round2 = await r2.json<RoundStatus>();
    expect((await adminPost(`/v1/admin/rounds/${round2.round_id}/close`)).status).toBe(200);

    const ledger = await privacy(model);
    expect(ledger.rounds.map((r) => r.round_id)).toEqual([`${model}_1`, `${model}_2`]);
    expect(ledger.epsilon_spent).toBe(epsilonAfter(2));

    // The third round's charge passes the budget: refused by the admin token and by the aggregator alike.
    const before = await tables(model);
    const byToken = await postRound(roundParams(model));
    expect(byToken.status).toBe(409);
    const refusal = await byToken.json<{ error: { code: string; message: string } }>();
    expect(refusal.error.code).toBe("budget_exceeded");
    expect(refusal.error.message).toMatch(
      new RegExp(`opening round "${model}_3" .* would spend ε=${epsilonAfter(3).toPrecision(6)} at δ=${1e-5}`),
    );
    const body3 = roundParams(model);
    const bySignature = await postRound(body3, await signedHeaders("POST", "/v1/admin/rounds", body3));
    expect(bySignature.status).toBe(409);
    expect(await errorCode(bySignature)).toBe("budget_exceeded");
    expect(await tables(model)).toEqual(before);
    expect((await privacy(model)).rounds).toHaveLength(2);

    // More noise costs less: a round with z = 50 still fits what is left.
    const cheap = roundParams(model, { mechanism: { noise_multiplier: 50, clip_rule: "fixed" } });
    const r3 = await postRound(cheap);
    expect(r3.status, await r3.clone().text()).toBe(201);
    const after = await privacy(model);
    expect(after.rounds.at(-1)).toMatchObject({ round_id: `${model}_3`, noise_multiplier: 50 });
    expect(after.epsilon_spent).toBeLessThanOrEqual(budget.epsilon);
  });

  it("an admin may raise ε_max later, but not change the accountant once rounds were charged", async () => {
    const model = uniqueModel("raise");
    await putBudget(model, budgetFor(1));
    const r1 = await openRound(model);
    await adminPost(`/v1/admin/rounds/${r1.round_id}/close`);
    expect((await postRound(roundParams(model))).status).toBe(409);
    const pld = await putBudget(model, { ...budgetFor(1), accountant: "pld" });
    expect(pld.status).toBe(409);
    expect(await errorCode(pld)).toBe("conflict");
    expect((await putBudget(model, budgetFor(2))).status).toBe(200);
    expect((await postRound(roundParams(model))).status).toBe(201);
  });

  it("accounts with the PLD accountant when the budget names it, the same ε as @fedge/privacy's ledger", async () => {
    const model = uniqueModel("pld");
    await putBudget(model, { epsilon: 50, delta: 1e-5, accountant: "pld" });
    const opened = await openRound(model, {
      sampling_rate: 0.25,
      mechanism: { noise_multiplier: 1.2, clip_rule: "adaptive", count_noise_std: 5 },
    });
    const status = await privacy(model);
    const ledger = new PrivacyLedger({ population: model, accountant: "pld" });
    ledger.record({
      roundId: opened.round_id,
      sampleRate: 0.25,
      noiseMultiplier: 1.2,
      mode: "central",
      openedAt: status.rounds[0]!.charged_at,
    });
    expect(status).toMatchObject({ accountant: "pld", delta: 1e-5 });
    expect(status.epsilon_spent).toBe(ledger.spent(1e-5));
    expect(status.epsilon_remaining).toBe(50 - ledger.spent(1e-5));
    expect(status.rounds[0]).toEqual({
      round_id: opened.round_id,
      sampling_rate: 0.25,
      noise_multiplier: 1.2,
      count_noise_std: 5,
      distributed: null,
      privacy_mode: "central",
      clip_rule: "adaptive",
      charged_at: opened.opened_at,
    });
  });

  it("charges a local round for the devices' noise, with q = 1 and the replace-one relation (sensitivity 2C)", async () => {
    const model = uniqueModel("local");
    await putBudget(model, { epsilon: 100, delta: 1e-5 });
    await openRound(model, { privacy_mode: "local", local_noise_multiplier: 2, sampling_rate: 0.1 });
    const status = await privacy(model);
    expect(status.rounds[0]).toMatchObject({ privacy_mode: "local", sampling_rate: 0.1, noise_multiplier: 2 });
    // the SDK's per-report ε uses replace-one adjacency (sensitivity 2C), so the ledger charges z/2 at q = 1
    const acc = createAccountant("rdp");
    acc.step({ noiseMultiplier: 1, sampleRate: 1 });
    expect(status.epsilon_spent).toBeCloseTo(acc.getEpsilon(1e-5), 9);
  });
});

describe("a distributed round (distributed discrete Gaussian, KLS21)", () => {
  // What the aggregator plans for an 8-value update: 16 bits, 20 devices expected, the charge counts 16 of them.
  const plan = planDistributedDiscreteGaussian({
    bits: 16,
    length: 8,
    clipNorm: 1,
    noiseMultiplier: 1.3,
    expectedClients: 20,
    minClients: 16,
  });
  const distributed = {
    bits: plan.bits,
    scale: plan.scale,
    dimension: plan.paddedLength,
    noise_shares: plan.minClients,
    share_variance: plan.localVariance,
    sensitivity_bound: plan.sensitivityBound,
  };
  const seed = toBase64Url(new Uint8Array(32).fill(7));
  const body = (model: string) =>
    roundParams(model, {
      privacy_mode: "distributed",
      sampling_rate: 0.5,
      mechanism: { noise_multiplier: 1.3, clip_rule: "fixed", distributed },
      rotation_seed: seed,
    });

  it("opens, charged KLS21's bound for its shares (the @fedge/privacy ledger's ε), in the public ledger", async () => {
    const model = uniqueModel("ddp");
    await putBudget(model, { epsilon: 50, delta: 1e-5 });
    const res = await postRound(body(model));
    expect(res.status, await res.clone().text()).toBe(201);
    const opened = await res.json<RoundStatus>();
    const status = await privacy(model);
    const ledger = new PrivacyLedger({ population: model });
    ledger.record({
      roundId: opened.round_id,
      sampleRate: 0.5,
      noiseMultiplier: 1.3,
      mode: "distributed",
      openedAt: status.rounds[0]!.charged_at,
      distributed: plan.noiseShares,
    });
    expect(status.epsilon_spent).toBe(ledger.spent(1e-5));
    // not the central charge of the same (q, z): the discrete sum costs more
    const central = new PrivacyLedger({ population: model });
    central.record({ ...ledger.rounds[0]!, mode: "central", distributed: undefined } as never);
    expect(status.epsilon_spent).toBeGreaterThan(central.spent(1e-5));
    expect(status.rounds[0]).toMatchObject({ privacy_mode: "distributed", distributed });
  });

  it("relays the noise and rotation seed in the task, and refuses plain updates to it (409, nothing stored)", async () => {
    const model = uniqueModel("ddpup");
    await putBudget(model, { epsilon: 50, delta: 1e-5 });
    expect((await postRound({ ...body(model), sampling_rate: 1 })).status).toBe(201);
    const { key } = await createApiKey();
    const device = await registerDevice(key);
    const answer = await checkin(device, model);
    if (!answer.selected) throw new Error("not selected at q = 1");
    const task = answer.task;
    expect(task.privacy_mode).toBe("distributed");
    // the signed receipt states the noise the device's own accountant charges
    expect(answer.receipt).toMatchObject({
      privacy_mode: "distributed",
      distributed_noise: {
        dimension: distributed.dimension,
        noise_shares: distributed.noise_shares,
        share_variance: distributed.share_variance,
        sensitivity_bound: distributed.sensitivity_bound,
      },
    });
    // signed by the edge key (the test seed in vitest.config.ts: 32 bytes of 0x2a), noise included
    const edgeKey = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(42)).publicKey;
    const r = answer.receipt!;
    expect(await verifyCheckinReceipt(r, fromBase64Url(r.signature), edgeKey)).toBe(true);
    const altered = { ...r, distributed_noise: { ...r.distributed_noise!, noise_shares: 1000 } };
    expect(await verifyCheckinReceipt(altered, fromBase64Url(r.signature), edgeKey)).toBe(false);
    expect(task.distributed).toEqual({ ...distributed, rotation_seed: seed });
    const before = await tables(model);
    const res = await upload(task.round_id, await makeUpdate(task, device));
    expect(res.status).toBe(409);
    expect(await errorCode(res)).toBe("conflict");
    expect(await tables(model)).toEqual(before);
  });

  it("is refused without its noise, seed or matching secure aggregation (400), and under a PLD budget, which has no analysis of it (400)", async () => {
    const model = uniqueModel("ddpbad");
    await putBudget(model, { epsilon: 50, delta: 1e-5, accountant: "pld" });
    const before = await tables(model);
    const noNoise = body(model);
    noNoise.mechanism = TEST_MECHANISM;
    // the noise and the secure aggregation share one ring: a mismatch in b or d', or no aggregation, is refused
    const ring = { modulus_bits: distributed.bits, encoded_length: distributed.dimension };
    for (const bad of [
      noNoise,
      { ...body(model), rotation_seed: undefined },
      { ...body(model), secure_aggregation: undefined },
      { ...body(model), secure_aggregation: { ...ring, modulus_bits: distributed.bits + 1 } },
      { ...body(model), secure_aggregation: { ...ring, encoded_length: 2 * distributed.dimension } },
    ]) {
      const res = await postRound(bad);
      expect(res.status).toBe(400);
      expect(await errorCode(res)).toBe("validation_failed");
    }
    const res = await postRound(body(model));
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/rdp accountant/);
    expect(await tables(model)).toEqual(before);
  });
});

describe("rounds without DP", () => {
  it("are refused once the population has a budget, and block a budget on a population that ran them", async () => {
    const budgeted = uniqueModel("nodp");
    await putBudget(budgeted, { epsilon: 100, delta: 1e-5 });
    const before = await tables(budgeted);
    const none = await postRound(roundParams(budgeted, { privacy_mode: "none" }));
    expect(none.status).toBe(409);
    expect(await errorCode(none)).toBe("budget_exceeded");
    expect(await tables(budgeted)).toEqual(before);

    const plain = uniqueModel("nodp");
    const opened = await openRound(plain, { privacy_mode: "none", max_reports: 3 });
    expect(opened.params.max_reports).toBe(3);
    expect((await privacy(plain)).rounds).toEqual([]);
    await adminPost(`/v1/admin/rounds/${opened.round_id}/close`);
    const late = await putBudget(plain, { epsilon: 100, delta: 1e-5 });
    expect(late.status).toBe(409);
    expect(await errorCode(late)).toBe("conflict");
    expect((await privacy(plain)).budget).toBeNull();
  });
});

describe("sampling stays Poisson in DP rounds", () => {
  it("a DP round never closes on a count: every selected device's report is accepted", async () => {
    const model = uniqueModel("poisson");
    const { key } = await createApiKey();
    const devices = await Promise.all([1, 2, 3, 4].map(() => registerDevice(key)));
    const round = await openRound(model);
    expect(round.params.max_reports).toBeUndefined();
    for (const d of devices) await uploadOk(round.round_id, await makeUpdate(await taskFor(d, model), d));
    const status = await (await call(`/v1/admin/rounds/${round.round_id}`, { headers: ADMIN })).json<RoundStatus>();
    expect(status).toMatchObject({ state: "collecting", accepted: 4, close_reason: null });
  });
});

describe("GET /v1/populations/:name/privacy", () => {
  it("is public, and says what was charged but nothing about devices or their number", async () => {
    const model = uniqueModel("pub");
    await putBudget(model, { epsilon: 10, delta: 1e-6 });
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    const round = await openRound(model, { sampling_rate: 1 });
    await uploadOk(round.round_id, await makeUpdate(await taskFor(d, model), d));
    const status = await privacy(model);
    expect(Object.keys(status).sort()).toEqual(
      [
        "accountant",
        "budget",
        "delta",
        "epsilon_against_edge",
        "epsilon_remaining",
        "epsilon_spent",
        "model",
        "rounds",
      ].sort(),
    );
    expect(Object.keys(status.rounds[0]!).sort()).toEqual(
      [
        "charged_at",
        "clip_rule",
        "count_noise_std",
        "distributed",
        "noise_multiplier",
        "privacy_mode",
        "round_id",
        "sampling_rate",
      ].sort(),
    );
    const text = JSON.stringify(status);
    for (const word of ["checked_in", "selected", "accepted", d.id]) expect(text).not.toContain(word);
    // Browsers may read it from any origin.
    const cors = await call(`/v1/populations/${model}/privacy`, { headers: { origin: "https://app.example" } });
    expect(cors.headers.get("access-control-allow-origin")).toBe("*");
    await cors.body?.cancel();
    expect((await call(`/v1/populations/Not_A_Name/privacy`)).status).toBe(400);
  });

  it("round status and lists, which hold the exact counts, are never answered without an admin credential", async () => {
    const model = uniqueModel("counts");
    const round = await openRound(model);
    const { key } = await createApiKey();
    for (const path of [`/v1/admin/rounds/${round.round_id}`, `/v1/admin/rounds?model=${model}`]) {
      expect((await call(path)).status).toBe(401);
      const res = await call(path, { headers: { authorization: `Bearer ${key}` } });
      expect(res.status).toBe(403);
      await res.body?.cancel();
    }
  });
});
