/**
 * Client SDK (issue 6): the size of the browser core, and the SDK's overhead on a remote predict.
 *
 * - `sdk-core-gzip`: @fedge/client's core (everything `new FedgeClient()` + predict/register/queue need; onnxruntime
 *   and the lazily loaded participate chunk excluded), esbuild --minify + gzip -9, against the issue's goal of 25 kB
 *   (25,000 bytes). Goal: ratio ≤ 1.
 * - `sdk-core-vs-tweetnacl`: the same core against tweetnacl alone bundled the same way (the Ed25519 dependency the
 *   core cannot drop): how much the SDK adds on top of its one required library.
 * - `sdk-predict-overhead`: p50 latency of `FedgeClient.predict` (batch 1) through `wrangler dev` on loopback, against a
 *   bare `fetch` of the same request in the same run (validation, retries bookkeeping, error mapping, JSON).
 */
import { measureSdkSize, CORE_GOAL_BYTES } from "../sdk-size-measure.ts";
import { FedgeClient, memoryStorage } from "@fedge/client";
import { startEdgeFixture, uploadToyModel } from "@fedge/local-edge";
import { measure, type BenchMeasure } from "../types.ts";

const PORT = 8819;

function p50(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export default async function run(): Promise<BenchMeasure[]> {
  const size = await measureSdkSize();
  const measures: BenchMeasure[] = [
    measure({
      name: "sdk-core-gzip",
      description: "@fedge/client browser core, esbuild --minify (ESM, splitting) + gzip -9, onnxruntime excluded",
      value: size.coreGzipBytes,
      unit: "bytes",
      baseline_name: "issue 6 goal: 25 kB (25,000 bytes)",
      baseline: CORE_GOAL_BYTES,
      better: "lower",
      goalRatio: 1,
      notes: `minified ${size.coreMinBytes} B; lazily loaded participate chunk (trainer, ONNX reader, codec) ${size.lazyGzipBytes} B gzip`,
    }),
    measure({
      name: "sdk-core-vs-tweetnacl",
      description: "@fedge/client core (gzip) against tweetnacl alone (gzip), both esbuild --minify",
      value: size.coreGzipBytes,
      unit: "bytes",
      baseline_name: "tweetnacl 1.0.3 alone, minified + gzip -9",
      baseline: size.tweetnaclGzipBytes,
      better: "lower",
      notes: `largest core inputs: ${size.coreTopInputs
        .slice(0, 4)
        .map((i) => `${i.path.split("/").slice(-2).join("/")} ${i.bytes} B`)
        .join(", ")}`,
    }),
  ];

  const fx = await startEdgeFixture(PORT);
  try {
    await uploadToyModel(fx, "bench-sdk", [784, 64, 10]);
    const row = Array.from({ length: 784 }, (_, i) => (i % 17) / 17);
    const client = new FedgeClient({ baseUrl: fx.url, apiKey: fx.apiKey, storage: memoryStorage() });
    const bare = async () => {
      const res = await fetch(`${fx.url}/v1/models/bench-sdk/predict`, {
        method: "POST",
        headers: { authorization: `Bearer ${fx.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ inputs: [row] }),
      });
      if (!res.ok) throw new Error(`predict ${res.status}`);
      await res.json();
    };
    const sdk = async () => {
      await client.predict("bench-sdk", [row]);
    };
    for (let i = 0; i < 20; i++) {
      await bare();
      await sdk();
    }
    const tBare: number[] = [];
    const tSdk: number[] = [];
    for (let i = 0; i < 200; i++) {
      // Interleaved so drift on a shared machine hits both alike.
      let t = performance.now();
      await bare();
      tBare.push(performance.now() - t);
      t = performance.now();
      await sdk();
      tSdk.push(performance.now() - t);
    }
    measures.push(
      measure({
        name: "sdk-predict-overhead",
        description: "p50 latency of FedgeClient.predict (784 floats, batch 1) through wrangler dev on loopback",
        value: p50(tSdk),
        unit: "ms",
        baseline_name: "bare fetch of the same predict request, same run, interleaved",
        baseline: p50(tBare),
        better: "lower",
        notes: `200 interleaved pairs after 20 warm-up pairs; p99 sdk ${tSdk.sort((a, b) => a - b)[197]!.toFixed(2)} ms, bare ${tBare.sort((a, b) => a - b)[197]!.toFixed(2)} ms`,
      }),
    );
  } finally {
    await fx.stop();
  }
  return measures;
}
