/**
 * What the aggregator released for a DP round, reported to the edge (`POST /v1/admin/rounds/:id/release`), inside
 * workerd: recorded once, signed like the aggregator's other calls, listed with the round; and every report whose
 * numbers are not what the round's own mechanism can have released is refused with nothing stored.
 */
import { beforeAll, describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import { discreteNoisyUnclippedFraction } from "@fedge/privacy";
import { signAggregatorRequest, toBase64Url, type RoundList, type RoundStatus } from "@fedge/protocol";
import {
  ADMIN,
  adminGet,
  adminPost,
  call,
  checkin,
  coordinatorState,
  createApiKey,
  errorCode,
  makeUpdate,
  openRound,
  registerDevice,
  taskFor,
  uniqueModel,
  uploadOk,
  type TestDevice,
} from "./rounds-helpers.ts";

const SIGMA_B = 2;
const Z = 1.2;
const ADAPTIVE = { noise_multiplier: Z, clip_rule: "adaptive", count_noise_std: SIGMA_B } as const;

const aggregator = nacl.sign.keyPair();
let apiKey: string;

beforeAll(async () => {
  const res = await call(`/v1/admin/aggregator-keys/${toBase64Url(aggregator.publicKey)}`, {
    method: "PUT",
    headers: ADMIN,
  });
  expect(res.status).toBe(201);
  apiKey = (await createApiKey()).key;
});

/** POSTs `body` as the aggregator does: Ed25519-signed, no admin token. */
async function signedPost(path: string, body: unknown): Promise<Response> {
  const bytes = new TextEncoder().encode(JSON.stringify(body));
  const headers = await signAggregatorRequest({
    method: "POST",
    host: "edge",
    path,
    body: bytes,
    secretKey: aggregator.secretKey,
  });
  return call(path, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: bytes });
}

const report = (roundId: string, body: unknown) => signedPost(`/v1/admin/rounds/${roundId}/release`, body);

async function status(roundId: string): Promise<RoundStatus> {
  return (await adminGet(`/v1/admin/rounds/${roundId}`)).json<RoundStatus>();
}

/** A DP round with `devices` updates accepted (each reporting clip bit 1), left open. */
async function collectingRound(
  model: string,
  devices: TestDevice[],
  over: Parameters<typeof openRound>[1] = {},
): Promise<RoundStatus> {
  const round = await openRound(model, { mechanism: ADAPTIVE, report_clip_bit: true, ...over });
  for (const d of devices) {
    const task = await taskFor(d, model);
    await uploadOk(task.round_id, await makeUpdate(task, d));
  }
  return round;
}

/** The release the aggregator computes for `unclipped` of `reports` bits at m: the real discrete mechanism. */
function adaptiveRelease(unclipped: number, reports: number, m: number) {
  const fraction = discreteNoisyUnclippedFraction({
    unclippedCount: unclipped,
    reportCount: reports,
    expectedClients: m,
    countNoiseStd: SIGMA_B,
  });
  return {
    clip_norm: 1,
    next_clip_norm: Math.exp(-0.2 * (fraction - 0.5)),
    noise_multiplier: Z,
    noise: "discrete-gaussian",
    unclipped: { noised_fraction: fraction, noised_count: fraction * m, expected_clients: m, noise_std: SIGMA_B },
  };
}

describe("a DP round's release", () => {
  it("is recorded once, after the round closed, from the aggregator's signed report, and listed with the round", async () => {
    const model = uniqueModel("rel");
    const devices = [await registerDevice(apiKey), await registerDevice(apiKey), await registerDevice(apiKey)];
    const round = await collectingRound(model, devices);
    const release = adaptiveRelease(3, 3, 4);

    // Not yet closed: refused, nothing stored.
    const early = await report(round.round_id, release);
    expect(early.status).toBe(409);
    expect(await errorCode(early)).toBe("conflict");
    expect((await status(round.round_id)).release).toBeNull();

    expect((await adminPost(`/v1/admin/rounds/${round.round_id}/close`)).status).toBe(200);
    const ok = await report(round.round_id, release);
    expect(ok.status, await ok.clone().text()).toBe(200);
    const recorded = (await ok.json<RoundStatus>()).release!;
    expect(recorded).toMatchObject(release);
    expect(Date.parse(recorded.reported_at)).toBeGreaterThan(Date.parse(round.opened_at) - 1);
    // The count is noised: on the discrete lattice, and σ_b is carried with it.
    expect(recorded.unclipped!.noise_std).toBe(SIGMA_B);

    // A second report (even the same one) is refused and changes nothing.
    const again = await report(round.round_id, { ...release, next_clip_norm: 2 });
    expect(again.status).toBe(409);
    expect(await errorCode(again)).toBe("conflict");
    expect((await status(round.round_id)).release).toEqual(recorded);
    expect((await report(round.round_id, release)).status).toBe(409);

    // The listing the dashboard reads carries it; the aggregated mark keeps it.
    expect((await adminPost(`/v1/admin/rounds/${round.round_id}/aggregated`, {})).status).toBe(200);
    const list = await (await adminGet(`/v1/admin/rounds?model=${model}`)).json<RoundList>();
    expect(list.rounds[0]!.release).toEqual(recorded);
    expect(list.rounds[0]!.state).toBe("aggregated");
  });

  it("is in the OpenAPI document, with its schema", async () => {
    const doc = await (
      await call("/openapi.json")
    ).json<{ paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, unknown> } }>();
    expect(Object.keys(doc.paths["/v1/admin/rounds/{id}/release"] ?? {})).toContain("post");
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(["RoundRelease", "NoisedUnclippedCount", "RecordedRoundRelease"]),
    );
  });

  it("refuses numbers the round's mechanism cannot have released, storing nothing", async () => {
    const model = uniqueModel("relbad");
    const devices = [await registerDevice(apiKey), await registerDevice(apiKey)];
    const round = await collectingRound(model, devices);
    expect((await adminPost(`/v1/admin/rounds/${round.round_id}/close`)).status).toBe(200);
    const good = adaptiveRelease(2, 2, 2);
    const exactCount = { noised_fraction: 1, noised_count: 2, expected_clients: 2 };
    const bad: [string, unknown, number][] = [
      ["an exact count without noise metadata", { ...good, unclipped: exactCount }, 400],
      ["a count noised with another σ_b", { ...good, unclipped: { ...good.unclipped, noise_std: 0.5 } }, 400],
      ["no count under adaptive clipping", { ...good, unclipped: null }, 400],
      ["another z", { ...good, noise_multiplier: 0.5 }, 400],
      ["another C", { ...good, clip_norm: 2 }, 400],
      ["no noise named in central mode", { ...good, noise: undefined }, 400],
      [
        "a discrete-gaussian count off its lattice",
        { ...good, unclipped: { ...good.unclipped, noised_fraction: 0.6, noised_count: 1.2 } },
        400,
      ],
      ["a count that is not fraction × m", { ...good, unclipped: { ...good.unclipped, noised_count: 7 } }, 400],
      ["an exact number of reports", { ...good, reports: 2 }, 400],
      ["a negative clip norm", { ...good, clip_norm: -1 }, 400],
    ];
    for (const [what, body, code] of bad) {
      const res = await report(round.round_id, body);
      expect(res.status, what).toBe(code);
      expect(await errorCode(res), what).toBe("validation_failed");
    }
    // Unauthenticated: refused before anything is read.
    const anon = await call(`/v1/admin/rounds/${round.round_id}/release`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(good),
    });
    expect(anon.status).toBe(401);
    expect((await status(round.round_id)).release).toBeNull();
    // The good one still goes through.
    expect((await report(round.round_id, good)).status).toBe(200);
  });

  it("takes no count from a fixed-clip round, and nothing from a round without DP or one never aggregated", async () => {
    const model = uniqueModel("relfix");
    const d = await registerDevice(apiKey);
    const fixed = await collectingRound(model, [d], { mechanism: { noise_multiplier: Z, clip_rule: "fixed" } });
    expect((await adminPost(`/v1/admin/rounds/${fixed.round_id}/close`)).status).toBe(200);
    const base = { clip_norm: 1, next_clip_norm: 1, noise_multiplier: Z, noise: "gaussian", unclipped: null };
    const counted = await report(fixed.round_id, {
      ...base,
      unclipped: { noised_fraction: 1, noised_count: 1, expected_clients: 1, noise_std: SIGMA_B },
    });
    expect(counted.status).toBe(400);
    expect((await report(fixed.round_id, { ...base, next_clip_norm: 0.5 })).status).toBe(400);
    expect((await status(fixed.round_id)).release).toBeNull();
    expect((await report(fixed.round_id, base)).status).toBe(200);
    expect((await status(fixed.round_id)).release).toMatchObject(base);

    // Local mode: the devices drew the noise, so the release names none.
    const localModel = uniqueModel("rellocal");
    const local = await collectingRound(localModel, [d], {
      privacy_mode: "local",
      local_noise_multiplier: Z,
      mechanism: { noise_multiplier: Z, clip_rule: "fixed" },
      report_clip_bit: false,
    });
    expect((await adminPost(`/v1/admin/rounds/${local.round_id}/close`)).status).toBe(200);
    expect((await report(local.round_id, base)).status).toBe(400);
    const { noise: _, ...localRelease } = base;
    expect((await report(local.round_id, localRelease)).status).toBe(200);

    // A DP round that closed with no update was abandoned: nothing was released.
    const empty = await openRound(model, { mechanism: ADAPTIVE, report_clip_bit: true });
    expect((await adminPost(`/v1/admin/rounds/${empty.round_id}/close`)).status).toBe(200);
    const abandoned = await report(empty.round_id, adaptiveRelease(0, 0, 1));
    expect(abandoned.status).toBe(409);

    // Mode none: its exact counts are public already; there is no release to report.
    const plainModel = uniqueModel("relnone");
    const plain = await openRound(plainModel, { privacy_mode: "none" });
    await checkin(d, plainModel);
    expect((await adminPost(`/v1/admin/rounds/${plain.round_id}/close`)).status).toBe(200);
    const none = await report(plain.round_id, base);
    expect(none.status).toBe(409);
    const stored = await coordinatorState(plainModel);
    expect(stored.rounds).toHaveLength(1);
    expect((await status(plain.round_id)).release).toBeNull();
  });

  it("is recorded on the population's object for a sharded round, once its shards' updates are summed", async () => {
    const model = uniqueModel("relshard");
    const res = await call(`/v1/admin/populations/${model}/sharding`, {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ shards: 4 }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    const devices = await Promise.all(Array.from({ length: 6 }, () => registerDevice(apiKey)));
    const round = await collectingRound(model, devices);
    expect(round.shards).toBe(4);
    expect((await adminPost(`/v1/admin/rounds/${round.round_id}/close`)).status).toBe(200);
    const release = adaptiveRelease(6, 6, 6);
    const ok = await report(round.round_id, release);
    expect(ok.status, await ok.clone().text()).toBe(200);
    const s = await status(round.round_id);
    expect(s.accepted).toBe(6);
    expect(s.release).toMatchObject(release);
    expect((await report(round.round_id, release)).status).toBe(409);
  });
});
