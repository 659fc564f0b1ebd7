/**
 * The exported ONNX files under the real inference engine (onnxruntime-node 1.30) and inside workerd.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { initMlp, trainLocal, xoshiroRandomBytes } from "@fedge/ml";
import {
  buildMlpOnnx,
  decodeOnnx,
  quantizePerChannelInt8,
  encodeOnnx,
  inspectOnnx,
  OnnxFormatError,
  OnnxLayoutError,
  readMlpFromOnnx,
  type MlpParams,
} from "@fedge/ml";
import { quantizePerChannelInt8 as gpuReferenceQuantize } from "@fedge/gpu-node/math";
import { build } from "esbuild";
import fc from "fast-check";
import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { loadMnist, type Dataset } from "fedge/data";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Plain reference forward pass in float64: x·W + b, ReLU on hidden layers. */
function referenceForward(
  params: MlpParams,
  x: Float32Array,
  n: number,
): { logits: Float64Array; hidden: Float64Array[] } {
  let a: ArrayLike<number> = x;
  const hidden: Float64Array[] = [];
  for (const l of params.layers) {
    const z = new Float64Array(n * l.outFeatures);
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < l.outFeatures; j++) {
        let s = l.bias[j]!;
        for (let i = 0; i < l.inFeatures; i++) s += a[r * l.inFeatures + i]! * l.weight[i * l.outFeatures + j]!;
        z[r * l.outFeatures + j] = l.activation === "relu" ? Math.max(0, s) : s;
      }
    }
    hidden.push(z);
    a = z;
  }
  return { logits: hidden.pop()!, hidden };
}

/**
 * ORT (level ≥ extended) fuses DequantizeLinear→MatMul into com.microsoft:MatMulNBits, whose default accuracy level 4
 * also quantizes the activations to int8; accuracy level 1 keeps float32 activations (exactly `x · (q·scale)`).
 */
const EXACT_INT8: ort.InferenceSession.SessionOptions = {
  extra: { session: { qdq_matmulnbits_accuracy_level: "1" } },
} as ort.InferenceSession.SessionOptions;

async function runOrt(
  bytes: Uint8Array,
  x: Float32Array,
  n: number,
  options: ort.InferenceSession.SessionOptions = {},
): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, ...options });
  try {
    const out = await session.run({ input: new ort.Tensor("float32", x, [n, x.length / n]) });
    expect(out.logits!.dims).toEqual([n, 10]);
    return out.logits!.data as Float32Array;
  } finally {
    await session.release();
  }
}

const argmax = (z: ArrayLike<number>, r: number, k: number) => {
  let best = 0;
  for (let j = 1; j < k; j++) if (z[r * k + j]! > z[r * k + best]!) best = j;
  return best;
};

describe("ONNX export under onnxruntime-node", () => {
  let params: MlpParams;
  let test: Dataset;
  let fp32: Uint8Array;
  let int8: Uint8Array;

  beforeAll(() => {
    const data = loadMnist();
    test = { x: data.test.x.subarray(0, 500 * 784), y: data.test.y.subarray(0, 500), n: 500 };
    // Realistic weights: one quick epoch on 3,000 training digits.
    const init = initMlp([784, 64, 10], { random: xoshiroRandomBytes(11) });
    const trainX = data.train.x.subarray(0, 3000 * 784);
    params = trainLocal(init, trainX, data.train.y.subarray(0, 3000), {
      epochs: 1,
      batchSize: 32,
      learningRate: 0.1,
      scope: "all",
      random: xoshiroRandomBytes(12),
    }).params;
    fp32 = buildMlpOnnx(params, { quantization: "none" });
    int8 = buildMlpOnnx(params, { quantization: "int8-per-channel-symmetric" });
  });

  it("fp32: ORT logits equal a plain TS forward pass within 1e-5", async () => {
    const got = await runOrt(fp32, test.x, test.n);
    const want = referenceForward(params, test.x, test.n).logits;
    let maxDiff = 0;
    for (let k = 0; k < want.length; k++) maxDiff = Math.max(maxDiff, Math.abs(got[k]! - want[k]!));
    expect(maxDiff).toBeLessThanOrEqual(1e-5);
  });

  it("int8: ORT with float32 activations computes exactly the dequantized model (1e-5 of the TS pass of q·scale)", async () => {
    const got = await runOrt(int8, test.x, test.n, EXACT_INT8);
    const deq = readMlpFromOnnx(int8).params;
    const want = referenceForward(deq, test.x, test.n).logits;
    let maxDiff = 0;
    for (let k = 0; k < want.length; k++) maxDiff = Math.max(maxDiff, Math.abs(got[k]! - want[k]!));
    expect(maxDiff).toBeLessThanOrEqual(1e-5);
  });

  it("int8 (ORT defaults) vs fp32: every logit within the analytic quantization bound, ≥ 99 % same class", async () => {
    // Stated tolerance, per sample and class k, from |W − deq(W)| ≤ s/2 per weight and, for ORT's default int8
    // activations, |a − a'| ≤ max|a|/127 per activation (twice the half-step of symmetric int8; also covers uint8
    // with a zero point). ReLU is 1-Lipschitz. With ax = max_i|x_i|/127:
    //   e1_j = (s1_j/2)·Σ_i|x_i| + ax·Σ_i(|W1_ij| + s1_j/2)          bound on the hidden pre-activation error
    //   d_j  = e1_j + max_j'(|h_j'| + e1_j')/127                       bound on the hidden activation error
    //   |Δz_k| ≤ Σ_j d_j·(|W2_jk| + s2_k/2) + |h_j|·s2_k/2  (+ 1e-4)
    const a = await runOrt(fp32, test.x, test.n);
    const b = await runOrt(int8, test.x, test.n);
    const q = readMlpFromOnnx(int8).int8!.layers;
    const [l1, l2] = params.layers as [MlpParams["layers"][0], MlpParams["layers"][0]];
    const s1 = q[0]!.scales;
    const s2 = q[1]!.scales;
    const colAbs = Array.from({ length: 64 }, (_, j) => {
      let t = 0;
      for (let i = 0; i < 784; i++) t += Math.abs(l1.weight[i * 64 + j]!) + s1[j]! / 2;
      return t;
    });
    const { hidden } = referenceForward(params, test.x, test.n);
    const h = hidden[0]!;
    let agree = 0;
    for (let r = 0; r < test.n; r++) {
      let l1norm = 0;
      let xmax = 0;
      for (let i = 0; i < 784; i++) {
        const v = Math.abs(test.x[r * 784 + i]!);
        l1norm += v;
        xmax = Math.max(xmax, v);
      }
      const e1 = colAbs.map((c, j) => (s1[j]! / 2) * l1norm + (xmax / 127) * c);
      let hmax = 0;
      for (let j = 0; j < 64; j++) hmax = Math.max(hmax, Math.abs(h[r * 64 + j]!) + e1[j]!);
      const d = e1.map((e) => e + hmax / 127);
      for (let k = 0; k < 10; k++) {
        let bound = 1e-4;
        for (let j = 0; j < 64; j++) {
          bound += d[j]! * (Math.abs(l2.weight[j * 10 + k]!) + s2[k]! / 2) + (Math.abs(h[r * 64 + j]!) * s2[k]!) / 2;
        }
        expect(Math.abs(a[r * 10 + k]! - b[r * 10 + k]!)).toBeLessThanOrEqual(bound);
      }
      if (argmax(a, r, 10) === argmax(b, r, 10)) agree++;
    }
    expect(agree / test.n).toBeGreaterThanOrEqual(0.99);
  });

  it("int8 file is ≤ 0.3× the fp32 file for the 784-64-10 MLP", () => {
    expect(int8.length / fp32.length).toBeLessThanOrEqual(0.3);
  });

  it("inspectOnnx agrees with the session ORT builds from the file", async () => {
    for (const bytes of [fp32, int8]) {
      const session = await ort.InferenceSession.create(bytes);
      const info = inspectOnnx(bytes);
      expect(info.inputs.map((v) => v.name)).toEqual(session.inputNames);
      expect(info.outputs.map((v) => v.name)).toEqual(session.outputNames);
      expect(info.inputs[0]).toEqual({ name: "input", dtype: "float32", shape: ["batch", 784] });
      await session.release();
    }
  });

  it("bad inputs: garbage and truncated bytes → OnnxFormatError; valid ONNX of another layout → OnnxLayoutError", async () => {
    const garbage = new Uint8Array(256).map((_, i) => (i * 37 + 11) & 0xff);
    for (const bytes of [garbage, fp32.subarray(0, fp32.length >> 1), new Uint8Array(0)]) {
      expect(() => inspectOnnx(bytes)).toThrow(OnnxFormatError);
      expect(() => readMlpFromOnnx(bytes)).toThrow(OnnxFormatError);
    }
    // A perfectly runnable model that is not the fedge layout (a Softmax after the logits).
    const model = decodeOnnx(fp32);
    model.graph!.node!.at(-1)!.output = ["pre"];
    model.graph!.node!.push({ opType: "Softmax", input: ["pre"], output: ["logits"], attribute: [] });
    const softmax = encodeOnnx(model);
    const probs = await runOrt(softmax, test.x.subarray(0, 784), 1);
    expect(probs.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
    expect(() => readMlpFromOnnx(softmax)).toThrow(OnnxLayoutError);
    expect(inspectOnnx(softmax).nodeCount).toBe(6);
  });
});

describe("int8 quantization: @fedge/protocol and the gpu-node reference agree", () => {
  it("bit-for-bit on random matrices, exact ties and subnormals", () => {
    const matrix = fc
      .record({ inF: fc.integer({ min: 1, max: 9 }), outF: fc.integer({ min: 1, max: 9 }) })
      .chain(({ inF, outF }) =>
        fc.record({
          inF: fc.constant(inF),
          outF: fc.constant(outF),
          w: fc.array(
            fc.oneof(
              fc.float({ noNaN: true, noDefaultInfinity: true, min: Math.fround(-1e30), max: Math.fround(1e30) }),
              fc.integer({ min: -254, max: 254 }).map((k) => k / 2), // half-integers: exact ties when s = 1
              fc.constantFrom(0, -0, 2 ** -149, -(2 ** -149), 127),
            ),
            { minLength: inF * outF, maxLength: inF * outF },
          ),
        }),
      );
    fc.assert(
      fc.property(matrix, ({ inF, outF, w }) => {
        const weight = Float32Array.from(w);
        expect(quantizePerChannelInt8(weight, inF, outF)).toEqual(gpuReferenceQuantize(weight, inF, outF));
      }),
      { numRuns: 500 },
    );
  });
});

describe("ONNX codec inside workerd", () => {
  it("decodes, inspects and rebuilds models without code generation (protobufjs reflection would fail there)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fedge-onnx-workerd-"));
    try {
      writeFileSync(
        join(dir, "entry.ts"),
        `import { buildMlpOnnx, inspectOnnx, OnnxFormatError, readMlpFromOnnx } from "@fedge/ml";
export default { async test() {
  const params = { layers: [{ inFeatures: 3, outFeatures: 2, weight: new Float32Array([1, -2, 3, 4, 5, 6]), bias: new Float32Array([0.5, -1]), activation: "none" }] };
  const bytes = buildMlpOnnx(params, { quantization: "int8-per-channel-symmetric" });
  const info = inspectOnnx(bytes);
  const back = readMlpFromOnnx(bytes);
  let typed = false;
  try { inspectOnnx(new Uint8Array([0xff, 0xff, 0xff])); } catch (e) { typed = e instanceof OnnxFormatError; }
  console.log("RESULT " + JSON.stringify({ shape: info.inputs[0].shape, q: Array.from(back.int8.layers[0].values), typed }));
} };
`,
      );
      await build({
        entryPoints: [join(dir, "entry.ts")],
        bundle: true,
        format: "esm",
        platform: "neutral",
        mainFields: ["module", "main"],
        // the entry sits in a temp dir: resolve @fedge/ml through the workspace's packages, by its package exports
        nodePaths: [join(ROOT, "node_modules")],
        // tweetnacl (via @fedge/protocol) requires "crypto" only where no WebCrypto exists; workerd has one
        external: ["crypto"],
        outfile: join(dir, "main.js"),
        logLevel: "error",
      });
      writeFileSync(
        join(dir, "config.capnp"),
        `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = ( services = [(name = "main", worker = .w)] );
const w :Workerd.Worker = ( modules = [(name = "main", esModule = embed "main.js")], compatibilityDate = "2026-11-01" );
`,
      );
      const workerd = join(dirname(createRequire(import.meta.url).resolve("workerd/package.json")), "bin", "workerd");
      const { stdout, stderr } = await promisify(execFile)(workerd, ["test", join(dir, "config.capnp")], {
        timeout: 60_000,
      });
      const line = `${stdout}\n${stderr}`.split("\n").find((l) => l.includes("RESULT "));
      expect(line, `${stdout}\n${stderr}`).toBeDefined();
      // Row-major [3][2]: column 0 = [1, 3, 5] (scale 5/127) → [25, 76, 127]; column 1 = [-2, 4, 6] (scale 6/127) → [-42, 85, 127].
      expect(JSON.parse(line!.slice(line!.indexOf("RESULT ") + 7))).toEqual({
        shape: ["batch", 3],
        q: [25, -42, 76, 85, 127, 127],
        typed: true,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
