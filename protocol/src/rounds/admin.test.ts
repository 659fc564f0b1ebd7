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
  it("secure_aggregation in distributed mode only, and always there; the task carries it", () => {
    const sa = { modulus_bits: 20, encoded_length: 1024 };
    expect(ok({ privacy_mode: "distributed", secure_aggregation: sa })).toBe(true);
    expect(ok({ privacy_mode: "distributed" })).toBe(false);
    expect(ok({ secure_aggregation: sa })).toBe(false);
    expect(ok({ privacy_mode: "distributed", secure_aggregation: { ...sa, modulus_bits: 33 } })).toBe(false);
    expect(ok({ privacy_mode: "distributed", secure_aggregation: { ...sa, encoded_length: 0 } })).toBe(false);
    const largest = { ...sa, encoded_length: SECAGG_MAX_ENCODED_LENGTH };
    expect(ok({ privacy_mode: "distributed", secure_aggregation: largest })).toBe(true);
    const over = { ...sa, encoded_length: SECAGG_MAX_ENCODED_LENGTH + 1 };
    expect(ok({ privacy_mode: "distributed", secure_aggregation: over })).toBe(false);
    const params = OpenRoundRequest.parse({ ...base, privacy_mode: "distributed", secure_aggregation: sa });
    const task = roundTaskFor("m_1", "m", params, "AAAAAAAAAAAAAAAAAAAAAA", "2030-01-01T00:00:00.000Z");
    expect(task.secure_aggregation).toEqual(sa);
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
