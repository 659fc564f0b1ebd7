/**
 * The SDK in Node against the real local edge (`wrangler dev`, workerd, R2/KV/DO emulation): predict, model download
 * with ETag caching, local inference with onnxruntime-node, registration that survives restarts, a full participate()
 * round trip, an upload whose response is lost (the retry resends the same bytes: duplicate receipt), the offline queue
 * across a restart, local-mode noise accepted by the edge, typed errors for bad requests, and `infer`/`inferLocal`/
 * `predictLocal` on the project's built CNN and text transformer.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { decodeUpdate, type RoundStatus } from "@fedge/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AuthenticationError,
  BadRequestError,
  FedgeClient,
  NotFoundError,
  fileStorage,
  memoryStorage,
  type FedgeStorage,
} from "@fedge/client";
import { forward, uploadManifestFromOnnx } from "@fedge/ml";
import {
  openRound,
  repoRoot,
  startEdgeFixture,
  toyData,
  uploadToyModel,
  type EdgeFixture,
  type ToyModel,
} from "@fedge/local-edge";

const PORT = 8811;
let fx: EdgeFixture;
let toy: ToyModel;
const dirs: string[] = [];

beforeAll(async () => {
  fx = await startEdgeFixture(PORT);
  toy = await uploadToyModel(fx, "sdk-toy");
}, 180_000);
afterAll(async () => {
  await fx?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempStorage(): Promise<{ dir: string; storage: FedgeStorage }> {
  const dir = await mkdtemp(path.join(tmpdir(), "fedge-sdk-state-"));
  dirs.push(dir);
  return { dir, storage: fileStorage(dir) };
}
const client = (storage: FedgeStorage, over: Partial<ConstructorParameters<typeof FedgeClient>[0]> = {}) =>
  new FedgeClient({ baseUrl: fx.url, apiKey: fx.apiKey, storage, ...over });

describe("FedgeClient against wrangler dev", () => {
  it("predict equals the float32 forward pass", async () => {
    const rows = [
      [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
      [1, 0, 1, 0, 1, 0, 1, 0],
    ];
    const res = await client(memoryStorage()).predict("sdk-toy", rows);
    expect(res.model).toBe("sdk-toy");
    expect(res.version).toBe(1);
    const expected = forward(toy.params, Float32Array.from(rows.flat()), 2);
    res.outputs.flat().forEach((v, i) => expect(Math.abs(v - expected[i]!)).toBeLessThan(1e-4));
    const flat = await client(memoryStorage()).predict("sdk-toy", Float32Array.from(rows.flat()), {
      features: 8,
      version: 1,
    });
    expect(flat.outputs).toEqual(res.outputs);
  });

  it("bad requests become typed errors with the edge's code; local bad inputs never leave the device", async () => {
    const c = client(memoryStorage());
    await expect(c.predict("no-such-model", [[1]])).rejects.toMatchObject({ status: 404, code: "model_not_found" });
    await expect(c.predict("no-such-model", [[1]])).rejects.toBeInstanceOf(NotFoundError);
    const wrong = await c.predict("sdk-toy", [[1, 2, 3]]).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(BadRequestError);
    expect((wrong as BadRequestError).code).toMatch(/invalid_shape|validation_failed/);
    const badKey = new FedgeClient({
      baseUrl: fx.url,
      apiKey: "fk_dev_wrongwrongwrongwrong",
      storage: memoryStorage(),
    });
    const e401 = await badKey.predict("sdk-toy", [[1, 2, 3, 4, 5, 6, 7, 8]]).catch((e: unknown) => e);
    expect(e401).toBeInstanceOf(AuthenticationError);
    expect((e401 as AuthenticationError).code).toBe("unauthorized");
    await expect(c.predict("sdk-toy", [[1, Number.NaN, 0, 0, 0, 0, 0, 0]])).rejects.toMatchObject({
      code: "invalid_input",
    });
    await expect(c.predict("Bad Name", [[1]])).rejects.toMatchObject({ code: "invalid_input", param: "model" });
    expect(() => new FedgeClient({ baseUrl: "ftp://x", apiKey: "k" })).toThrow(/baseUrl/);
    expect(() => new FedgeClient({ baseUrl: fx.url, apiKey: "k", maxRetries: -1 })).toThrow(/maxRetries/);
  });

  it("loadModel caches by ETag across restarts, and predictLocal runs onnxruntime on device", async () => {
    const { storage } = await tempStorage();
    const first = await client(storage).loadModel("sdk-toy");
    expect(first).toMatchObject({ name: "sdk-toy", version: 1, fromCache: false });
    expect([...first.bytes]).toEqual([...toy.bytes]);
    expect(first.etag).toBe(`"${first.manifest!.sha256}"`);
    const again = await client(storage).loadModel("sdk-toy");
    expect(again.fromCache).toBe(true);
    expect([...again.bytes]).toEqual([...toy.bytes]);

    const c = client(storage);
    const input = [[0.5, 0.25, 0, 1, 0.75, 0.1, 0.9, 0.3]];
    const local = await c.predictLocal("sdk-toy", input);
    const remote = await c.predict("sdk-toy", input);
    local.outputs[0]!.forEach((v, i) => expect(Math.abs(v - remote.outputs[0]![i]!)).toBeLessThan(1e-4));
    await expect(c.loadModel("sdk-toy", 99)).rejects.toMatchObject({ status: 404 });
  });

  it("register is idempotent across restarts", async () => {
    const { storage } = await tempStorage();
    const a = await client(storage).register();
    expect(a.deviceId).toMatch(/^dev_/);
    const b = await client(storage).register();
    expect(b).toEqual(a);
    const [c1, c2] = await Promise.all([client(storage).register(), client(storage).register()]);
    expect(c1.deviceId).toBe(a.deviceId);
    expect(c2.deviceId).toBe(a.deviceId);
  });

  describe("participate", () => {
    let round: RoundStatus;
    beforeAll(async () => {
      round = await openRound(fx, toy);
    });

    it("a full round trip: check in, train, clip, sign, upload, receipt", async () => {
      const { storage } = await tempStorage();
      const c = client(storage);
      const { data, labels } = toyData(toy.sizes, 32);
      const res = await c.participate({ model: "sdk-toy", data, labels });
      if (!res.selected || res.status !== "uploaded") throw new Error(`unexpected ${JSON.stringify(res)}`);
      expect(res.roundId).toBe(round.round_id);
      expect(res.receipt).toMatchObject({ round_id: round.round_id, duplicate: false });
      expect(res.receipt.device_id).toBe((await c.register()).deviceId);
      expect(res.stats!.samples).toBe(32);
      expect(res.stats!.updateLength).toBe(round.params.update_length);
      expect(await c.queue.list()).toEqual([]);
      const status = await fx.admin<RoundStatus>("GET", `/v1/admin/rounds/${round.round_id}`);
      expect(status.accepted).toBeGreaterThanOrEqual(1);

      const again = await c.participate({ model: "sdk-toy", data, labels });
      expect(again).toMatchObject({ selected: false, reason: "already_reported" });
    });

    it("a lost upload response is retried with the same bytes and gets the same receipt", async () => {
      const { storage } = await tempStorage();
      const bodies: Uint8Array[] = [];
      let dropped = false;
      const lossy: typeof fetch = async (input, init) => {
        const res = await fetch(input, init);
        if (String(input).endsWith("/updates")) {
          bodies.push(new Uint8Array(init!.body as Uint8Array));
          if (!dropped) {
            dropped = true;
            await res.arrayBuffer(); // the edge stored it; the device never hears back
            throw new TypeError("fetch failed: connection reset");
          }
        }
        return res;
      };
      const c = client(storage, { fetch: lossy });
      const { data, labels } = toyData(toy.sizes, 16, 9);
      const res = await c.participate({ model: "sdk-toy", data, labels });
      if (!res.selected || res.status !== "uploaded") throw new Error(`unexpected ${JSON.stringify(res)}`);
      expect(res.receipt.duplicate).toBe(true);
      expect(bodies).toHaveLength(2);
      expect([...bodies[1]!]).toEqual([...bodies[0]!]);
      expect(decodeUpdate(bodies[0]!).roundId).toBe(round.round_id);
    });

    it("offline: the update waits in the queue, survives a restart, and is sent once back online", async () => {
      const { storage } = await tempStorage();
      const offline: typeof fetch = async (input, init) => {
        if (String(input).endsWith("/updates")) throw new TypeError("fetch failed: network is unreachable");
        return fetch(input, init);
      };
      const { data, labels } = toyData(toy.sizes, 16, 11);
      const res = await client(storage, { fetch: offline, maxRetries: 1 }).participate({
        model: "sdk-toy",
        data,
        labels,
      });
      expect(res).toMatchObject({ selected: true, status: "queued", receipt: null });
      if (!res.selected || res.status !== "queued") throw new Error("expected queued");
      expect(res.error.code).toBe("connection_error");

      // "Restart": a new client over the same files, back online.
      const restarted = client(storage);
      const queued = await restarted.queue.list();
      expect(queued.map((q) => q.roundId)).toEqual([round.round_id]);
      const flushed = await restarted.flushQueue();
      expect(flushed.uploaded).toHaveLength(1);
      expect(flushed.uploaded[0]!.receipt.duplicate).toBe(false);
      expect(await restarted.queue.list()).toEqual([]);
    });

    it("an aborted participate throws APIUserAbortError", async () => {
      const c = client(memoryStorage());
      const { data, labels } = toyData(toy.sizes, 8);
      await expect(
        c.participate({ model: "sdk-toy", data, labels, signal: AbortSignal.abort() }),
      ).rejects.toMatchObject({
        code: "aborted",
      });
      await expect(c.participate({ model: "sdk-toy", data: new Float32Array(0), labels })).rejects.toMatchObject({
        code: "invalid_input",
      });
    });
  });

  it("local privacy mode: the noised update (‖Δ‖ ≫ C) is accepted by the edge", async () => {
    const localToy = await uploadToyModel(fx, "sdk-toy-local", [8, 4, 3], 2);
    await openRound(fx, localToy, {
      privacy_mode: "local",
      local_noise_multiplier: 2, // one report: ε ≈ 4.4 at δ = 1e-5, within the SDK's default policy (≤ 8)
      clip_norm: 0.5,
      trainable: "head",
    });
    const { data, labels } = toyData(localToy.sizes, 16, 3);
    const res = await client(memoryStorage()).participate({ model: "sdk-toy-local", data, labels });
    if (!res.selected || res.status !== "uploaded") throw new Error(`unexpected ${JSON.stringify(res)}`);
    expect(res.stats!.noiseStd).toBeCloseTo(1, 12);
    expect(res.stats!.clipBit).toBeUndefined(); // never sent in local mode
    expect(res.stats!.updateLength).toBe(4 * 3 + 3);
  });

  it("not selected when no round is open", async () => {
    const other = await uploadToyModel(fx, "sdk-toy-idle", [8, 3], 3);
    const { data, labels } = toyData(other.sizes, 4);
    const res = await client(memoryStorage()).participate({ model: "sdk-toy-idle", data, labels });
    expect(res).toMatchObject({ selected: false, reason: "no_open_round" });
  });
});

describe("infer: typed tensors through the Open Inference Protocol, and on device", () => {
  const seed = (model: string) => new Uint8Array(readFileSync(path.join(repoRoot, "models", model, "fp32.onnx")));
  const upload = async (name: string, bytes: Uint8Array) => {
    const form = new FormData();
    form.set("model", new File([bytes as Uint8Array<ArrayBuffer>], "model.onnx"));
    form.set("manifest", JSON.stringify(uploadManifestFromOnnx(name, 1, bytes)));
    await fx.admin("POST", `/v1/admin/models/${name}/versions`, form);
  };
  const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number) => {
    expect(a.length).toBe(b.length);
    for (let i = 0; i < a.length; i++) expect(Math.abs(Number(a[i]) - Number(b[i]))).toBeLessThanOrEqual(tol);
  };
  beforeAll(async () => {
    await upload("sdk-cnn", seed("mnist-cnn"));
    await upload("sdk-text", seed("text-transformer"));
  }, 60_000);

  it("the text transformer: int64 ids + mask in, logits + probs out; binary, JSON and local agree", async () => {
    const c = client(memoryStorage());
    const ids = new BigInt64Array([1n, 2n, 9n, 0n, 5n, 6n, 7n, 8n]);
    const mask = new BigInt64Array([1n, 1n, 1n, 0n, 1n, 1n, 1n, 1n]);
    const inputs = { input_ids: { data: ids, shape: [2, 4] }, attention_mask: { data: mask, shape: [2, 4] } };
    const binary = await c.infer("sdk-text", inputs);
    expect(binary).toMatchObject({ model: "sdk-text", version: 1 });
    expect(binary.outputs.logits).toMatchObject({ dtype: "float32", shape: [2, 2] });
    expect(binary.outputs.logits!.data).toBeInstanceOf(Float32Array);
    const json = await c.infer("sdk-text", inputs, { binary: false, outputs: ["probs"] });
    expect(Object.keys(json.outputs)).toEqual(["probs"]);
    close(json.outputs.probs!.data as Float32Array, binary.outputs.probs!.data as Float32Array, 1e-6);
    const local = await c.inferLocal("sdk-text", inputs);
    for (const out of ["logits", "probs"]) {
      close(local.outputs[out]!.data as Float32Array, binary.outputs[out]!.data as Float32Array, 1e-4);
    }
    // predictLocal takes the same named tensors and answers rows of the first output.
    const rows = await c.predictLocal("sdk-text", inputs);
    expect(rows.outputs).toHaveLength(2);
    close(rows.outputs.flat(), binary.outputs.logits!.data as Float32Array, 1e-4);
  });

  it("the NCHW CNN: infer with a 4-D tensor, predictLocal on 784-value rows, predict (v1) agree", async () => {
    const c = client(memoryStorage());
    const image = Float32Array.from({ length: 2 * 784 }, (_, i) => ((i * 37) % 101) / 100);
    const remote = await c.infer("sdk-cnn", { image: { data: image, shape: [2, 1, 28, 28] } });
    expect(remote.outputs.logits!.shape).toEqual([2, 10]);
    const rows = [Array.from(image.subarray(0, 784)), Array.from(image.subarray(784))];
    const local = await c.predictLocal("sdk-cnn", rows);
    close(local.outputs.flat(), remote.outputs.logits!.data as Float32Array, 1e-4);
    const v1 = await c.predict("sdk-cnn", rows);
    close(v1.outputs.flat(), remote.outputs.logits!.data as Float32Array, 1e-4);
  });

  it("bad tensors: typed errors from the edge's v2 codes, local checks before sending", async () => {
    const c = client(memoryStorage());
    const mask = { data: new BigInt64Array([1n, 1n]), shape: [1, 2] };
    const outOfVocab = await c
      .infer("sdk-text", { input_ids: { data: new BigInt64Array([1n, 48n]), shape: [1, 2] }, attention_mask: mask })
      .catch((e: unknown) => e);
    expect(outOfVocab).toBeInstanceOf(BadRequestError);
    expect(outOfVocab).toMatchObject({ status: 400, code: "out_of_range" });
    const wrongType = await c
      .infer("sdk-text", { input_ids: { data: new Int32Array([1, 2]), shape: [1, 2] }, attention_mask: mask })
      .catch((e: unknown) => e);
    expect(wrongType).toMatchObject({ status: 400, code: "invalid_datatype" });
    await expect(
      c.infer("sdk-text", { input_ids: { data: new BigInt64Array(3), shape: [1, 2] } }),
    ).rejects.toMatchObject({
      code: "invalid_input",
      param: "inputs.input_ids",
    });
    await expect(
      c.infer("sdk-text", { x: { data: [1, 2] as unknown as Float32Array, shape: [2] } }),
    ).rejects.toMatchObject({
      code: "invalid_input",
    });
    await expect(c.infer("no-such-model", { x: { data: new Float32Array(1), shape: [1] } })).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });
});
