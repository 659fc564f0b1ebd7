/**
 * The device's privacy policy: the rules one by one (pure), the option checks, and `participate()` against a hostile
 * edge on loopback (node:http, real sockets and fetch) that hands out tasks the real edge would refuse to open
 * (z = 0, no z): the SDK refuses each with `PrivacyPolicyError`, and the peer sees no model download and no upload.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  distributedNoiseOf,
  distributedSharesOf,
  localReportEpsilon,
  planDistributedDiscreteGaussian,
  PrivacyLedger,
} from "@fedge/privacy";
import { secureAggregationTaskFor, type RoundTask } from "@fedge/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FedgeClient } from "./client.ts";
import { InvalidInputError, PrivacyPolicyError } from "./core/errors.ts";
import { memoryStorage } from "./storage/storage.ts";
import { DEFAULT_PRIVACY_POLICY, resolvePrivacyPolicy } from "./validate.ts";
import type { PrivacyPolicy } from "./types.ts";
import { checkPrivacyPolicy } from "./policy.ts";

const task = (over: Partial<RoundTask> = {}): RoundTask => ({
  round_id: "toy_1",
  model: "toy",
  model_version: 1,
  clip_norm: 1,
  learning_rate: 0.1,
  local_epochs: 1,
  batch_size: 8,
  privacy_mode: "central",
  trainable: "all",
  update_length: 10,
  nonce: "AAAAAAAAAAAAAAAAAAAAAA",
  deadline: "2099-01-01T00:00:00Z",
  population_privacy: { epsilon: 1, planned_epsilon: 4, delta: 1e-5 },
  ...over,
});

const reasonOf = (t: RoundTask, policy: PrivacyPolicy = {}): string => {
  try {
    checkPrivacyPolicy(t, resolvePrivacyPolicy(policy));
    return "accepted";
  } catch (e) {
    if (!(e instanceof PrivacyPolicyError)) throw e;
    expect(e.code).toBe("privacy_policy_refused");
    expect(e.roundId).toBe(t.round_id);
    expect(e.message).toMatch(new RegExp(`round toy_1 refused by the privacy policy \\(${e.reason}\\)`));
    return e.reason;
  }
};

const local = (z: number | undefined): RoundTask => {
  const { population_privacy: _p, ...t } = task({ privacy_mode: "local" });
  return z === undefined ? t : { ...t, local_noise_multiplier: z };
};

describe("checkPrivacyPolicy, default policy", () => {
  it("defaults: central and local allowed, local ε ≤ 8, population ε ≤ 10, δ ≤ 1e-5", () => {
    expect(DEFAULT_PRIVACY_POLICY).toEqual({
      allowedModes: ["central", "local"],
      maxLocalEpsilon: 8,
      minLocalNoiseMultiplier: undefined,
      maxPopulationEpsilon: 10,
      maxDelta: 1e-5,
    });
    expect(Object.isFrozen(DEFAULT_PRIVACY_POLICY)).toBe(true);
  });

  it("refuses none and distributed unless allowed", () => {
    const { clip_norm: _c, population_privacy: _p, ...none } = task({ privacy_mode: "none" });
    expect(reasonOf(none)).toBe("mode_not_allowed");
    expect(reasonOf(none, { allowedModes: ["central", "local", "none"] })).toBe("accepted");
    expect(reasonOf(task({ privacy_mode: "distributed" }))).toBe("mode_not_allowed");
    expect(reasonOf(task(), { allowedModes: ["local"] })).toBe("mode_not_allowed");
  });

  it("distributed, when allowed: its noise in its secure aggregation's ring, the sum's ε and the population's within the policy", () => {
    const noiseOf = (z: number) => ({
      ...distributedNoiseOf(
        planDistributedDiscreteGaussian({
          bits: 20,
          length: 10,
          clipNorm: 1,
          noiseMultiplier: z,
          expectedClients: 20,
          minClients: 16,
        }),
      ),
      rotation_seed: "A".repeat(43),
    });
    const sa = secureAggregationTaskFor({ modulus_bits: 20, encoded_length: 16 }, Date.now() + 60_000);
    const allow = { allowedModes: ["distributed"] as const };
    const dist = (over: Partial<RoundTask> = {}) =>
      task({ privacy_mode: "distributed", secure_aggregation: sa, distributed: noiseOf(1.5), ...over });
    expect(reasonOf(dist(), allow)).toBe("accepted");
    expect(reasonOf(dist({ secure_aggregation: undefined }), allow)).toBe("secure_aggregation_missing");
    expect(reasonOf(dist({ distributed: undefined }), allow)).toBe("noise_missing");
    expect(reasonOf(dist({ secure_aggregation: { ...sa, modulus_bits: 24 } }), allow)).toBe("noise_mismatch");
    expect(reasonOf(dist({ secure_aggregation: { ...sa, encoded_length: 32 } }), allow)).toBe("noise_mismatch");
    // The released sum's ε against the edge: one round at q = 1, zero-out, KLS21's bound for the 15 other shares and
    // the device's own (16): the ledger's `spentAgainstEdge`, at the policy's δ. The add/remove charge is larger.
    const epsilonOf = (z: number) => {
      const ledger = new PrivacyLedger({ population: "p", accountant: "rdp" });
      ledger.record({
        roundId: "toy_1",
        sampleRate: 1,
        noiseMultiplier: z,
        mode: "distributed",
        openedAt: new Date(0).toISOString(),
        distributed: distributedSharesOf(noiseOf(z)),
      });
      expect(ledger.spent(1e-5)).toBeGreaterThan(ledger.spentAgainstEdge(1e-5));
      return ledger.spentAgainstEdge(1e-5);
    };
    const eps = epsilonOf(1.5);
    expect(reasonOf(dist(), { ...allow, maxLocalEpsilon: eps * 1.001 })).toBe("accepted");
    expect(reasonOf(dist(), { ...allow, maxLocalEpsilon: eps * 0.999 })).toBe("epsilon_too_high");
    // weaker noise (z = 0.5): more ε than the default maximum of 8
    expect(epsilonOf(0.5)).toBeGreaterThan(8);
    expect(reasonOf(dist({ distributed: noiseOf(0.5) }), allow)).toBe("epsilon_too_high");
    // The task's colluding devices cost: their shares are not counted, so the same noise costs more; a sum whose
    // threshold leaves no honest share besides the device's own is refused outright.
    const colluding = (corrupt: number) => dist({ distributed: { ...noiseOf(1.5), corrupt_devices: corrupt } });
    expect(reasonOf(colluding(3), { ...allow, maxLocalEpsilon: eps * 1.001 })).toBe("epsilon_too_high");
    expect(reasonOf(colluding(3), allow)).toBe("accepted");
    expect(reasonOf(colluding(15), allow)).toBe("noise_missing");
    const { population_privacy: _p, ...unstated } = dist();
    expect(reasonOf(unstated, allow)).toBe("epsilon_missing");
    const loose = dist({ population_privacy: { epsilon: 1, planned_epsilon: 50, delta: 1e-5 } });
    expect(reasonOf(loose, allow)).toBe("epsilon_too_high");
  });

  it("local: refuses a missing z and z = 0, and z whose one-report ε is over the maximum", () => {
    expect(reasonOf(local(undefined))).toBe("noise_missing");
    expect(reasonOf(local(0))).toBe("noise_missing");
    expect(reasonOf(local(Number.NaN))).toBe("noise_missing");
    // ε(z = 1) ≈ 10.0 > 8, ε(z = 1.25) ≈ 7.6 ≤ 8 (replace-one, δ = 1e-5).
    expect(localReportEpsilon({ noiseMultiplier: 1 })).toBeGreaterThan(8);
    expect(reasonOf(local(1))).toBe("epsilon_too_high");
    expect(reasonOf(local(1.25))).toBe("accepted");
    expect(reasonOf(local(1), { maxLocalEpsilon: 10.5 })).toBe("accepted");
    expect(reasonOf(local(2), { minLocalNoiseMultiplier: 3 })).toBe("noise_too_low");
    expect(reasonOf(local(4), { maxLocalEpsilon: 1 })).toBe("epsilon_too_high");
    expect(reasonOf(local(8), { maxLocalEpsilon: 1 })).toBe("accepted");
  });

  it("central: refuses a task without population ε, over the maximum (planned, else charged), or δ too large", () => {
    const { population_privacy: _p, ...bare } = task();
    expect(reasonOf(bare)).toBe("epsilon_missing");
    expect(reasonOf(task({ population_privacy: { epsilon: 1, planned_epsilon: 12, delta: 1e-5 } }))).toBe(
      "epsilon_too_high",
    );
    expect(reasonOf(task({ population_privacy: { epsilon: 11, delta: 1e-5 } }))).toBe("epsilon_too_high");
    expect(reasonOf(task({ population_privacy: { epsilon: 9, delta: 1e-5 } }))).toBe("accepted");
    expect(reasonOf(task({ population_privacy: { epsilon: 1, delta: 1e-3 } }))).toBe("delta_too_high");
    expect(reasonOf(task({ population_privacy: { epsilon: 1, delta: 1e-3 } }), { maxDelta: 1e-3 })).toBe("accepted");
    expect(
      reasonOf(task({ population_privacy: { epsilon: 1, planned_epsilon: 12, delta: 1e-5 } }), {
        maxPopulationEpsilon: 20,
      }),
    ).toBe("accepted");
  });
});

describe("resolvePrivacyPolicy", () => {
  it("names the bad field", () => {
    const bad: [unknown, RegExp][] = [
      [{ allowedModes: [] }, /privacyPolicy\.allowedModes/],
      [{ allowedModes: ["central", "federated"] }, /privacyPolicy\.allowedModes/],
      [{ maxLocalEpsilon: 0 }, /privacyPolicy\.maxLocalEpsilon/],
      [{ maxLocalEpsilon: Infinity }, /privacyPolicy\.maxLocalEpsilon/],
      [{ maxPopulationEpsilon: -1 }, /privacyPolicy\.maxPopulationEpsilon/],
      [{ minLocalNoiseMultiplier: 0 }, /privacyPolicy\.minLocalNoiseMultiplier/],
      [{ maxDelta: 1 }, /privacyPolicy\.maxDelta/],
      ["strict", /privacyPolicy/],
    ];
    for (const [policy, message] of bad) {
      expect(() => resolvePrivacyPolicy(policy as PrivacyPolicy)).toThrow(InvalidInputError);
      expect(() => resolvePrivacyPolicy(policy as PrivacyPolicy)).toThrow(message);
      expect(
        () => new FedgeClient({ baseUrl: "http://127.0.0.1:1", apiKey: "k", privacyPolicy: policy as PrivacyPolicy }),
      ).toThrow(message);
    }
    expect(resolvePrivacyPolicy({ allowedModes: ["none"] })).toMatchObject({ allowedModes: ["none"], maxDelta: 1e-5 });
  });
});

describe("participate() against a hostile edge: refused tasks upload nothing", () => {
  let server: Server;
  let baseUrl: string;
  let current: RoundTask;
  const seen: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        seen.push(`${req.method} ${req.url}`);
        res.setHeader("content-type", "application/json");
        if (req.url === "/v1/devices") {
          res.writeHead(201);
          res.end(JSON.stringify({ device_id: "dev_hostile0001" }));
        } else if (req.url === "/v1/rounds/checkin") {
          res.writeHead(200);
          res.end(JSON.stringify({ selected: true, task: current }));
        } else {
          res.writeHead(500);
          res.end(JSON.stringify({ error: { code: "internal", message: "a refused task must not get here" } }));
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const { clip_norm: _c, population_privacy: _p, ...none } = task({ privacy_mode: "none" });
  const cases: [string, RoundTask, PrivacyPolicy, string][] = [
    ["local mode with z = 0", local(0), {}, "noise_missing"],
    ["local mode without z", local(undefined), {}, "noise_missing"],
    ["local mode with z too small for the ε cap", local(0.5), {}, "epsilon_too_high"],
    ["a mode the app does not allow", task(), { allowedModes: ["local"] }, "mode_not_allowed"],
    [
      "a central population over the ε cap",
      task({ population_privacy: { epsilon: 2, planned_epsilon: 50, delta: 1e-5 } }),
      {},
      "epsilon_too_high",
    ],
    ["privacy mode none by default", none, {}, "mode_not_allowed"],
  ];
  for (const [name, t, policy, reason] of cases) {
    it(`${name}: PrivacyPolicyError (${reason}), no download, no upload, nothing queued`, async () => {
      current = t;
      seen.length = 0;
      const client = new FedgeClient({ baseUrl, apiKey: "fk_test", storage: memoryStorage(), privacyPolicy: policy });
      const err = await client
        .participate({ model: "toy", data: new Float32Array(8), labels: new Uint8Array(1) })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PrivacyPolicyError);
      expect(err).toBeInstanceOf(FedgeClient.PrivacyPolicyError);
      expect((err as PrivacyPolicyError).reason).toBe(reason);
      expect(seen).toEqual(["POST /v1/devices", "POST /v1/rounds/checkin"]);
      expect(await client.queue.list()).toEqual([]);
    });
  }
});
