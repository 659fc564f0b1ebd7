import { describe, expect, it } from "vitest";
import {
  OpenRoundRequest,
  encodeUpdateStreamFrameHeader,
  parseRoundId,
  readUpdateStream,
  roundIdFor,
  roundTaskFor,
  TRAINING_MODEL_NAME_MAX,
} from "./admin.ts";
import { SECAGG_MAX_ENCODED_LENGTH } from "./task.ts";

const base = {
  model: "mnist",
  model_version: 1,
  clip_norm: 1,
  learning_rate: 0.1,
  local_epochs: 1,
  batch_size: 16,
  privacy_mode: "central",
  trainable: "all",
  update_length: 10,
  sampling_rate: 0.3,
  min_reports: 1,
  mechanism: { noise_multiplier: 1, clip_rule: "fixed" },
  duration_s: 60,
};

/** The same round without DP (mode none): no mechanism, max_reports allowed. */
const { mechanism: _mechanism, ...plain } = { ...base, privacy_mode: "none", max_reports: 10 };

describe("round ids", () => {
  it("round-trips <model>_<seq> and fits the codec's 64 characters", () => {
    expect(roundIdFor("mnist", 3)).toBe("mnist_3");
    expect(parseRoundId("mnist-v2_17")).toEqual({ model: "mnist-v2", seq: 17 });
    const longest = roundIdFor("a".repeat(TRAINING_MODEL_NAME_MAX), 999_999_999_999_999);
    expect(longest.length).toBe(64);
    expect(parseRoundId(longest)).not.toBeNull();
    for (const bad of ["mnist", "mnist_0", "mnist_01", "Mnist_1", "_1", "a_b_1", "mnist_1x"]) {
      expect(parseRoundId(bad)).toBeNull();
    }
  });
});

describe("OpenRoundRequest", () => {
  it("accepts a complete request and defaults the dtype to float32", () => {
    expect(OpenRoundRequest.parse(base).update_dtype).toBe("float32");
  });
  it("wants exactly one of deadline and duration_s, min ≤ max, and the noise multiplier only in local mode", () => {
    const { duration_s: _d, ...noWindow } = base;
    expect(OpenRoundRequest.safeParse(noWindow).success).toBe(false);
    expect(OpenRoundRequest.safeParse({ ...base, deadline: "2030-01-01T00:00:00Z" }).success).toBe(false);
    expect(OpenRoundRequest.safeParse({ ...plain, min_reports: 11 }).success).toBe(false);
    expect(OpenRoundRequest.safeParse({ ...plain, min_reports: 10 }).success).toBe(true);
    expect(OpenRoundRequest.safeParse({ ...base, privacy_mode: "local" }).success).toBe(false);
    expect(OpenRoundRequest.safeParse({ ...base, local_noise_multiplier: 1 }).success).toBe(false);
    expect(OpenRoundRequest.safeParse({ ...base, privacy_mode: "local", local_noise_multiplier: 1 }).success).toBe(
      true,
    );
    expect(OpenRoundRequest.safeParse({ ...base, sampling_rate: 0 }).success).toBe(false);
    expect(OpenRoundRequest.safeParse({ ...base, model: "a".repeat(49) }).success).toBe(false);
    expect(OpenRoundRequest.safeParse({ ...base, extra: 1 }).success).toBe(false);
  });
});

describe("OpenRoundRequest privacy fields", () => {
  const ok = (over: Record<string, unknown>) => OpenRoundRequest.safeParse({ ...base, ...over }).success;
  it("privacy mode none is explicit: clip_norm may be left out there, and only there", () => {
    const { clip_norm: _c, mechanism: _m, ...noClipNone } = base;
    const { clip_norm: _c2, ...noClip } = base;
    expect(OpenRoundRequest.safeParse({ ...noClipNone, privacy_mode: "none" }).success).toBe(true);
    expect(ok({ privacy_mode: "none", mechanism: undefined })).toBe(true);
    expect(OpenRoundRequest.safeParse(noClip).success).toBe(false);
    expect(OpenRoundRequest.safeParse({ ...noClip, privacy_mode: "local", local_noise_multiplier: 1 }).success).toBe(
      false,
    );
  });
  it("report_clip_bit only in central mode; a local noise multiplier must be > 0", () => {
    expect(ok({ report_clip_bit: true })).toBe(true);
    expect(ok({ privacy_mode: "local", local_noise_multiplier: 1, report_clip_bit: true })).toBe(false);
    expect(ok({ privacy_mode: "none", report_clip_bit: true })).toBe(false);
    expect(ok({ privacy_mode: "local", local_noise_multiplier: 0 })).toBe(false);
  });
  it("population_privacy: ε ≥ 0, δ in (0, 1), charged ≤ planned, never in mode none", () => {
    expect(ok({ population_privacy: { epsilon: 1.5, planned_epsilon: 4, delta: 1e-5 } })).toBe(true);
    expect(ok({ population_privacy: { epsilon: 1.5, delta: 1e-5 } })).toBe(true);
    expect(ok({ population_privacy: { epsilon: 5, planned_epsilon: 4, delta: 1e-5 } })).toBe(false);
    expect(ok({ population_privacy: { epsilon: 1, delta: 0 } })).toBe(false);
    expect(ok({ population_privacy: { epsilon: -1, delta: 1e-5 } })).toBe(false);
    expect(ok({ population_privacy: { epsilon: 1, delta: 1e-5, extra: 1 } })).toBe(false);
    expect(ok({ privacy_mode: "none", population_privacy: { epsilon: 1, delta: 1e-5 } })).toBe(false);
  });
  it("secure_aggregation in distributed mode only, always there and equal to the noise's ring; the task carries it", () => {
    const sa = { modulus_bits: 20, encoded_length: 1024 };
    const noise = {
      bits: 20,
      scale: 400,
      dimension: 1024,
      noise_shares: 20,
      share_variance: 9,
      sensitivity_bound: 161_000,
    };
    const distributed = (over: Record<string, unknown> = {}, length = 1000) => ({
      privacy_mode: "distributed",
      update_length: length,
      rotation_seed: "A".repeat(43),
      mechanism: {
        noise_multiplier: 1,
        clip_rule: "fixed",
        distributed: { ...noise, dimension: 2 ** Math.ceil(Math.log2(length)) },
      },
      secure_aggregation: { ...sa, encoded_length: 2 ** Math.ceil(Math.log2(length)) },
      ...over,
    });
    expect(ok(distributed())).toBe(true);
    expect(ok(distributed({ secure_aggregation: undefined }))).toBe(false);
    expect(ok({ secure_aggregation: sa })).toBe(false);
    expect(ok(distributed({ secure_aggregation: { ...sa, modulus_bits: 33 } }))).toBe(false);
    expect(ok(distributed({ secure_aggregation: { ...sa, encoded_length: 0 } }))).toBe(false);
    // The noise's ring and the aggregation's ring are one: a mismatch in b or d' is refused.
    expect(ok(distributed({ secure_aggregation: { ...sa, modulus_bits: 19 } }))).toBe(false);
    expect(ok(distributed({ secure_aggregation: { ...sa, encoded_length: 2048 } }))).toBe(false);
    expect(ok(distributed({}, SECAGG_MAX_ENCODED_LENGTH))).toBe(true);
    expect(ok(distributed({}, SECAGG_MAX_ENCODED_LENGTH + 1))).toBe(false);
    const params = OpenRoundRequest.parse({ ...base, ...distributed() });
    const task = roundTaskFor("m_1", "m", params, "AAAAAAAAAAAAAAAAAAAAAA", "2030-01-01T00:00:00.000Z");
    // The task states each stage's deadline: advertise with the collecting deadline, then 60 s per stage by default.
    expect(task.secure_aggregation).toEqual({
      ...sa,
      stage_deadlines: {
        advertise: "2030-01-01T00:00:00.000Z",
        "share-keys": "2030-01-01T00:01:00.000Z",
        "masked-input": "2030-01-01T00:02:00.000Z",
        consistency: "2030-01-01T00:03:00.000Z",
        unmask: "2030-01-01T00:04:00.000Z",
      },
    });
    // Stage lengths of the round's own, and bad ones refused.
    const timed = OpenRoundRequest.parse({
      ...base,
      ...distributed({ secure_aggregation: { ...sa, stage_s: { "share-keys": 5, unmask: 90 } } }),
    });
    expect(
      roundTaskFor("m_1", "m", timed, "AAAAAAAAAAAAAAAAAAAAAA", "2030-01-01T00:00:00.000Z").secure_aggregation
        ?.stage_deadlines,
    ).toEqual({
      advertise: "2030-01-01T00:00:00.000Z",
      "share-keys": "2030-01-01T00:00:05.000Z",
      "masked-input": "2030-01-01T00:01:05.000Z",
      consistency: "2030-01-01T00:02:05.000Z",
      unmask: "2030-01-01T00:03:35.000Z",
    });
    expect(ok(distributed({ secure_aggregation: { ...sa, stage_s: { consistency: 0 } } }))).toBe(false);
    expect(ok(distributed({ secure_aggregation: { ...sa, stage_s: { advertise: 10 } } }))).toBe(false);
    expect(task.distributed).toEqual({ ...noise, rotation_seed: "A".repeat(43) });
  });
  it("the task a device receives carries the privacy fields (and no clip norm in mode none)", () => {
    const params = OpenRoundRequest.parse({
      ...base,
      report_clip_bit: true,
      population_privacy: { epsilon: 1, planned_epsilon: 2, delta: 1e-5 },
    });
    const task = roundTaskFor("mnist_1", "mnist", params, "AAAAAAAAAAAAAAAAAAAAAA", "2030-01-01T00:00:00.000Z");
    expect(task).toMatchObject({
      clip_norm: 1,
      privacy_mode: "central",
      report_clip_bit: true,
      population_privacy: { epsilon: 1, planned_epsilon: 2, delta: 1e-5 },
    });
    const { clip_norm: _c, mechanism: _m, ...noClip } = base;
    const none = roundTaskFor(
      "m_1",
      "m",
      OpenRoundRequest.parse({ ...noClip, privacy_mode: "none" }),
      "AAAAAAAAAAAAAAAAAAAAAA",
      "2030-01-01T00:00:00.000Z",
    );
    expect(none.privacy_mode).toBe("none");
    expect("clip_norm" in none || "report_clip_bit" in none || "population_privacy" in none).toBe(false);
  });
});

describe("OpenRoundRequest: the charge and Poisson sampling", () => {
  const ok = (over: Record<string, unknown>, from: Record<string, unknown> = base) =>
    OpenRoundRequest.safeParse({ ...from, ...over }).success;
  it("a DP round carries its mechanism; a round without DP carries none", () => {
    expect(ok({ mechanism: undefined })).toBe(false);
    for (const mode of ["central", "local", "distributed"]) {
      const local = mode === "local" ? { local_noise_multiplier: 1 } : {};
      expect(ok({ privacy_mode: mode, mechanism: undefined, ...local }), mode).toBe(false);
    }
    expect(ok({}, plain)).toBe(true);
    expect(ok({ mechanism: base.mechanism }, plain)).toBe(false);
  });
  it("a distributed round carries its discrete noise (power-of-two dimension for the update, fixed clip) and only it", () => {
    const noise = {
      bits: 16,
      scale: 400,
      dimension: 8,
      noise_shares: 20,
      share_variance: 9,
      sensitivity_bound: 161_000,
    };
    const distributed = (over: Record<string, unknown> = {}) => ({
      privacy_mode: "distributed",
      update_length: 5,
      rotation_seed: "A".repeat(43),
      mechanism: { noise_multiplier: 1, clip_rule: "fixed", distributed: { ...noise, ...over } },
      secure_aggregation: { modulus_bits: noise.bits, encoded_length: noise.dimension },
    });
    expect(ok(distributed())).toBe(true);
    expect(ok({ ...distributed(), mechanism: base.mechanism })).toBe(false); // no noise stated
    expect(ok({ ...distributed(), privacy_mode: "central" })).toBe(false); // noise stated outside distributed
    expect(ok(distributed({ dimension: 16 }))).toBe(false); // not update_length's padding
    expect(ok(distributed({ dimension: 6 }))).toBe(false);
    expect(ok(distributed({ share_variance: 0.2 }))).toBe(false); // below KLS21's σ ≥ 1/2
    expect(ok(distributed({ bits: 33 }))).toBe(false);
    // the charge counts noise_shares − 1 − corrupt_devices shares: at least one must be left
    expect(ok(distributed({ corrupt_devices: 5 }))).toBe(true);
    expect(ok(distributed({ corrupt_devices: 18 }))).toBe(true);
    expect(ok(distributed({ corrupt_devices: 19 }))).toBe(false);
    expect(ok(distributed({ noise_shares: 1 }))).toBe(false);
    expect(ok(distributed({ noise_shares: 2 }))).toBe(true);
    expect(ok(distributed({ corrupt_devices: 0 }))).toBe(false); // absent is 0: one wire form per mechanism
    expect(ok(distributed({ sensitivity_bound: 1.5 }))).toBe(false);
    expect(ok({ ...distributed(), rotation_seed: undefined })).toBe(false);
    expect(ok({ ...distributed(), rotation_seed: "A".repeat(42) })).toBe(false);
    expect(ok({ rotation_seed: "A".repeat(43) })).toBe(false); // a seed outside distributed mode
    const params = OpenRoundRequest.parse({ ...base, ...distributed() });
    const task = roundTaskFor("mnist_1", "mnist", params, "n", "2026-12-07T06:00:00Z");
    expect(task.distributed).toEqual({ ...noise, rotation_seed: "A".repeat(43) });
    expect(
      roundTaskFor("mnist_1", "mnist", OpenRoundRequest.parse(base), "n", "2026-12-07T06:00:00Z").distributed,
    ).toBe(undefined);
    const adaptive = distributed();
    adaptive.mechanism = { ...adaptive.mechanism, clip_rule: "adaptive", count_noise_std: 5 } as never;
    expect(ok(adaptive)).toBe(false);
  });
  it("no max_reports and min_reports 1 in DP modes", () => {
    expect(ok({ max_reports: 10 })).toBe(false);
    expect(ok({ min_reports: 2 })).toBe(false);
    expect(ok({ max_reports: 1_000_000 }, plain)).toBe(true);
  });
  it("σ_b with the adaptive clip rule only, and 2σ_b > z; local mode charges the devices' noise, fixed clip", () => {
    expect(ok({ mechanism: { noise_multiplier: 1, clip_rule: "adaptive", count_noise_std: 5 } })).toBe(true);
    expect(ok({ mechanism: { noise_multiplier: 1, clip_rule: "adaptive" } })).toBe(false);
    expect(ok({ mechanism: { noise_multiplier: 1, clip_rule: "fixed", count_noise_std: 5 } })).toBe(false);
    expect(ok({ mechanism: { noise_multiplier: 1, clip_rule: "adaptive", count_noise_std: 0.5 } })).toBe(false);
    expect(ok({ mechanism: { noise_multiplier: 1, clip_rule: "fixed", extra: 1 } })).toBe(false);
    const local = { privacy_mode: "local", local_noise_multiplier: 2 };
    expect(ok({ ...local, mechanism: { noise_multiplier: 2, clip_rule: "fixed" } })).toBe(true);
    expect(ok({ ...local, mechanism: { noise_multiplier: 1, clip_rule: "fixed" } })).toBe(false);
    expect(ok({ ...local, mechanism: { noise_multiplier: 2, clip_rule: "adaptive", count_noise_std: 5 } })).toBe(false);
  });
});

describe("update stream frames", () => {
  const frame = (key: number, payload: number[]) => {
    const header = encodeUpdateStreamFrameHeader(new Uint8Array(32).fill(key), payload.length);
    const out = new Uint8Array(header.length + payload.length);
    out.set(header);
    out.set(payload, header.length);
    return out;
  };
  const streamOf = (bytes: Uint8Array, chunk: number) =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += chunk) controller.enqueue(bytes.slice(i, i + chunk));
        controller.close();
      },
    });

  it("reads frames whatever the chunking", async () => {
    const a = frame(1, [1, 2, 3]);
    const b = frame(
      2,
      Array.from({ length: 100 }, (_, i) => i),
    );
    const all = new Uint8Array(a.length + b.length);
    all.set(a);
    all.set(b, a.length);
    for (const chunk of [1, 7, 36, 1000]) {
      const got = [];
      for await (const f of readUpdateStream(streamOf(all, chunk))) got.push(f);
      expect(got.map((f) => [f.publicKey[0], Array.from(f.update).length])).toEqual([
        [1, 3],
        [2, 100],
      ]);
      expect(Array.from(got[1]!.update)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    }
  });

  it("throws on a truncated stream", async () => {
    const a = frame(1, [1, 2, 3]);
    await expect(async () => {
      for await (const _ of readUpdateStream(streamOf(a.slice(0, a.length - 1), 4))) void _;
    }).rejects.toThrow(/ends inside a frame/);
    await expect(async () => {
      for await (const _ of readUpdateStream(streamOf(a.slice(0, 10), 4))) void _;
    }).rejects.toThrow(/frame header/);
  });
});
