/**
 * @module
 * Where a demo-shaped round's time goes, through the real local edge (`wrangler dev`) with the real SDK and aggregator:
 * DEVICES devices (`FedgeClient`, each its own key and storage, at most 24 in flight, as `npm run demo`), q = 0.3, MNIST
 * 784→64→10 with head-only training on a few digits per device (5 local epochs, batch 8), central DP with adaptive
 * clipping, int8 uploads (`FEDGE_BENCH_PROFILE_DTYPE=float32` runs the same round with float32 uploads, to compare); one
 * round driven by `EdgeRoundRunner` (open with the ledger charged, collect, close, stream
 * and re-verify the updates, aggregate, evaluate, export, upload, publish). Then a second round with the same devices,
 * as `npm run demo` runs ten: in the first, every device joins the population (its registry records it); from the
 * second on, devices check in to a population they already joined, which is what most of a population's rounds are.
 *
 * Every device's `fetch` is wrapped to add up the time its requests take by kind (check-in, model/manifest download,
 * upload); a device's own work (training, clipping, quantizing, signing, its queue) is its `participate()` wall time
 * minus that network time. The aggregator's admin client is wrapped the same way (opening/closing the round, pulling
 * the update stream, uploading and publishing the version); the rest of the runner's time is aggregation compute
 * (signature re-verification, clip, noise, optimizer step, evaluation, int8 export). Baseline: the round's wall time.
 * Device times are summed over devices (they overlap at concurrency 24): read them as shares of device-seconds. A
 * request's time includes waiting for this process's event loop, which the devices' training blocks in turns; the edge's
 * own cost is its workerd CPU time (all threads) over the devices' part, also reported, which that does not inflate.
 */
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { FedgeClient, memoryStorage } from "@fedge/client";
import { createBackend } from "@fedge/gpu-node";
import { readMlpFromOnnx, uploadManifestFromOnnx } from "@fedge/ml";
import { toBase64Url } from "@fedge/protocol";
import { repoRoot, startLocalEdge, type LocalEdge } from "@fedge/local-edge";
import { loadMnist, shardNonIid } from "fedge/data";
import { parsePopulationConfig } from "fedge/config";
import { RoundEngine } from "fedge/round";
import { generateSigningKey } from "fedge/export";
import { EdgeAdminClient, EdgeRoundRunner, edgeRunnerStateOf } from "fedge/edge";
import { xoshiroRandomBytes } from "@fedge/ml";
import { measure, type BenchMeasure } from "../types.ts";
import { workerdCpuNs } from "../cpu-time.ts";

const PORT = Number(process.env.FEDGE_BENCH_PROFILE_PORT ?? 8840);
const DEVICES = Number(process.env.FEDGE_BENCH_PROFILE_DEVICES ?? 1000);
const DTYPE = process.env.FEDGE_BENCH_PROFILE_DTYPE === "float32" ? "float32" : "int8";
const Q = 0.3;
const CONCURRENCY = 24;
const MODEL = "profile";
const ADMIN_TOKEN = `bench-${toBase64Url(crypto.getRandomValues(new Uint8Array(16)))}`;

type Kind = "checkin" | "download" | "upload" | "register" | "other";

function kindOf(url: string, method: string): Kind {
  const p = new URL(url).pathname;
  if (p === "/v1/rounds/checkin") return "checkin";
  if (p.startsWith("/v1/rounds/") && p.endsWith("/updates") && method === "POST") return "upload";
  if (p === "/v1/devices") return "register";
  if (p.startsWith("/v1/models/")) return "download";
  return "other";
}

/** A `fetch` that adds each request's time (until its body is read) to `into[kind]`. */
function timedFetch(into: Record<string, number>, classify: (url: string, method: string) => string): typeof fetch {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const kind = classify(url, init?.method ?? "GET");
    const t = performance.now();
    const res = await fetch(input, init);
    const body = await res.arrayBuffer();
    into[kind] = (into[kind] ?? 0) + (performance.now() - t) / 1000;
    const sent = init?.body;
    if (sent instanceof ArrayBuffer || ArrayBuffer.isView(sent)) {
      into[`${kind}_bytes`] = (into[`${kind}_bytes`] ?? 0) + sent.byteLength;
    }
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  }) as typeof fetch;
}

async function pool(n: number, limit: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < n) await job(next++);
    }),
  );
}

export default async function run(): Promise<BenchMeasure[]> {
  const persistTo = mkdtempSync(path.join(os.tmpdir(), "fedge-profile-bench-"));
  const backend = await createBackend({ prefer: "cpu" });
  let edge: LocalEdge | undefined;
  try {
    edge = await startLocalEdge({ port: PORT, persistTo, vars: { FEDGE_ADMIN_TOKEN: ADMIN_TOKEN } });
    const { train, test } = loadMnist();
    const onnx = new Uint8Array(readFileSync(path.join(repoRoot, "models/mnist-mlp-init/fp32.onnx")));
    const operator = new EdgeAdminClient({ baseUrl: edge.url, adminToken: ADMIN_TOKEN });
    const form = new FormData();
    form.append("model", new File([onnx], "fp32.onnx"));
    form.append("manifest", JSON.stringify(uploadManifestFromOnnx(MODEL, 1, onnx)));
    const up = await fetch(`${edge.url}/v1/admin/models/${MODEL}/versions`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      body: form,
    });
    if (up.status !== 201) throw new Error(`model upload: ${up.status} ${await up.text()}`);
    const key = await operator.createApiKey("round profile", 1_000_000);
    await operator.setPrivacyBudget(MODEL, { epsilon: 10, delta: 1e-5 });
    // The edge publishes only versions signed by an aggregator key it trusts.
    const signingKey = generateSigningKey();
    await operator.registerAggregatorKey(toBase64Url(signingKey.publicKey));

    const config = parsePopulationConfig({
      model: MODEL,
      privacy: { mode: "central", noiseMultiplier: 1, budget: { epsilon: 10, delta: 1e-5 } },
      samplingRate: Q,
      expectedClients: Q * DEVICES,
      trainable: "head",
      clipping: { clipNorm: 1, adaptive: { targetQuantile: 0.3 } },
      optimizer: { kind: "fedavgm", lr: 4, momentum: 0.5 },
      client: { learningRate: 0.5, localEpochs: 5, batchSize: 8 },
      updateDtype: DTYPE,
    });
    const engine = await RoundEngine.create({
      config,
      backend,
      initialModel: readMlpFromOnnx(onnx).params,
      log: () => {},
    });
    const adminTimes: Record<string, number> = {};
    const admin = new EdgeAdminClient({
      baseUrl: edge.url,
      adminToken: ADMIN_TOKEN,
      fetch: timedFetch(adminTimes, (url) => {
        const p = new URL(url).pathname;
        if (p.endsWith("/update-stream") || p.includes("/updates")) return "pull";
        if (p.startsWith("/v1/admin/models")) return "publish";
        return "rounds";
      }),
    });

    const shards = shardNonIid(train, { clients: DEVICES, labelsPerClient: 2, random: xoshiroRandomBytes(1) });
    const device = shards.map((s) => {
      const net: Record<string, number> = {};
      const client = new FedgeClient({
        baseUrl: edge!.url,
        apiKey: key.key,
        storage: memoryStorage(),
        platform: "bench-profile",
        fetch: timedFetch(net, kindOf),
      });
      return { client, net, data: s.x, labels: s.y, wall: 0 };
    });
    const tRegister = performance.now();
    await pool(DEVICES, CONCURRENCY, (i) => device[i]!.client.register().then(() => undefined));
    const registerS = (performance.now() - tRegister) / 1000;
    for (const d of device) for (const k of Object.keys(d.net)) delete d.net[k];

    let collectS = 0;
    let edgeCpuAtCollect = 0;
    let edgeCollectCpuS = 0;
    let uploaded = 0;
    let selected = 0;
    const runner = new EdgeRoundRunner({
      engine,
      admin,
      signingKey,
      state: edgeRunnerStateOf(config, 1),
      heldOut: { x: test.x.subarray(0, 500 * 784), y: test.y.subarray(0, 500), n: 500 },
      collect: async () => {
        edgeCpuAtCollect = workerdCpuNs(edge!.pid!);
        const t = performance.now();
        await pool(DEVICES, CONCURRENCY, async (i) => {
          const d = device[i]!;
          const t0 = performance.now();
          const res = await d.client.participate({ model: MODEL, data: d.data, labels: d.labels });
          d.wall += (performance.now() - t0) / 1000;
          if (res.selected) {
            selected++;
            if (res.status === "uploaded") uploaded++;
          }
        });
        collectS = (performance.now() - t) / 1000;
        edgeCollectCpuS = (workerdCpuNs(edge!.pid!) - edgeCpuAtCollect) / 1e9;
      },
      log: () => undefined,
    });

    /** One round through the runner, its time split as the module header says. */
    const profileRound = async (label: string) => {
      collectS = 0;
      uploaded = 0;
      selected = 0;
      for (const d of device) {
        d.wall = 0;
        for (const k of Object.keys(d.net)) delete d.net[k];
      }
      for (const k of Object.keys(adminTimes)) delete adminTimes[k];
      const cpu0 = workerdCpuNs(edge!.pid!);
      const t0 = performance.now();
      const result = await runner.runRound();
      const roundS = (performance.now() - t0) / 1000;
      const edgeCpuS = (workerdCpuNs(edge!.pid!) - cpu0) / 1e9;
      const sum = (k: Kind) => device.reduce((a, d) => a + (d.net[k] ?? 0), 0);
      const checkinS = sum("checkin");
      const downloadS = sum("download");
      const uploadS = sum("upload");
      const deviceWall = device.reduce((a, d) => a + d.wall, 0);
      const deviceWorkS = deviceWall - checkinS - downloadS - uploadS - sum("other");
      const adminS = Object.entries(adminTimes)
        .filter(([k]) => !k.endsWith("_bytes"))
        .reduce((a, [, b]) => a + b, 0);
      const afterCollect = roundS - collectS;
      const aggregationS = Math.max(0, afterCollect - (adminTimes.pull ?? 0) - (adminTimes.publish ?? 0));
      const uploadBytes = device.reduce((a, d) => a + (d.net.upload_bytes ?? 0), 0);
      const share = (x: number) => `${((100 * x) / deviceWall).toFixed(0)} %`;
      const notes =
        `${label}: ${DEVICES} devices (registered beforehand in ${registerS.toFixed(0)} s), ${selected} selected, ${uploaded} uploaded ` +
        `(${DTYPE}, ${uploaded > 0 ? Math.round(uploadBytes / uploaded) : 0} bytes per signed update), ` +
        `${result.accepted} accepted, outcome ${result.outcome}; round ${roundS.toFixed(1)} s = devices ${collectS.toFixed(1)} s ` +
        `+ runner ${afterCollect.toFixed(1)} s (pull ${(adminTimes.pull ?? 0).toFixed(1)} s, publish ${(adminTimes.publish ?? 0).toFixed(1)} s, ` +
        `aggregation compute ${aggregationS.toFixed(1)} s; admin requests ${adminS.toFixed(1)} s in all). ` +
        `Device-seconds (${CONCURRENCY} in flight): check-ins ${checkinS.toFixed(0)} s (${share(checkinS)}), model downloads ` +
        `${downloadS.toFixed(0)} s (${share(downloadS)}), uploads ${uploadS.toFixed(0)} s (${share(uploadS)}), device work ` +
        `${deviceWorkS.toFixed(0)} s (${share(deviceWorkS)}). Edge (workerd) CPU ${edgeCpuS.toFixed(1)} s in the round, ` +
        `${edgeCollectCpuS.toFixed(1)} s of it while the devices ran. Client, edge and aggregator share this machine's ${os.cpus().length} cores`;
      console.log(`  ${notes}`);
      return { roundS, edgeCollectCpuS, collectS, checkinS, uploadS, deviceWorkS, afterCollect, notes };
    };
    const first = await profileRound("round 1 (every device joins the population)");
    const second = await profileRound("round 2 (the same devices again)");

    const m = (r: typeof first, name: string, description: string, value: number) =>
      measure({
        name,
        description,
        value,
        unit: "s",
        baseline_name: "the round's wall time (open → published)",
        baseline: r.roundS,
        better: "lower",
        notes: r.notes,
      });
    return [
      m(
        first,
        "round-devices",
        "the devices' part of the round (all check in; the selected train, sign and upload)",
        first.collectS,
      ),
      m(
        first,
        "round-checkins",
        "time in check-in requests, summed over devices (overlapping, 24 in flight; every device checks in, q = 0.3 are selected)",
        first.checkinS,
      ),
      m(first, "round-uploads", "time in update uploads, summed over devices", first.uploadS),
      m(
        first,
        "round-device-work",
        "device work (training 5 epochs on its digits, clip, int8, sign, queue): participate() wall minus its requests, summed over devices",
        first.deviceWorkS,
      ),
      m(
        first,
        "round-aggregation",
        "the aggregator after the devices: close, pull and re-verify the update stream, aggregate, evaluate, export, upload, publish",
        first.afterCollect,
      ),
      m(
        second,
        "round2-devices",
        "second round, same devices (they joined the population in round 1): the devices' part of the round",
        second.collectS,
      ),
      measure({
        name: "round2-edge-cpu",
        description:
          "second round, same devices: the edge's (workerd, all threads) CPU while the devices check in, download, upload",
        value: second.edgeCollectCpuS,
        unit: "s",
        baseline_name: "the same in round 1 (every device joins the population)",
        baseline: first.edgeCollectCpuS,
        better: "lower",
        notes: second.notes,
      }),
      m(
        second,
        "round2-checkins",
        "second round, same devices: time in check-in requests, summed over devices (24 in flight)",
        second.checkinS,
      ),
    ];
  } finally {
    await edge?.stop();
    await backend.dispose();
    rmSync(persistTo, { recursive: true, force: true });
  }
}
