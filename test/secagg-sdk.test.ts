/**
 * `participate()` in a distributed round, against the real edge (`wrangler dev`, port 8846): seven devices — five SDK
 * clients in Node and two in headless Chromium (one keeps its identity in IndexedDB as a non-extractable WebCrypto
 * key, so it signs asynchronously) — train, clip, encode and run SecAgg+ through the edge while a driver (the
 * operator) closes each stage once every live device answered it. One Node device drops before masking and one after
 * masking (their network fails); the other five finish, and the operator's modular sum is exactly the sum of the six
 * encoded updates that were masked.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { build } from "esbuild";
import { chromium, type BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FedgeClient, memoryStorage, plainModularEncoder, type ParticipateResult } from "@fedge/client";
import { trainableLength } from "@fedge/ml";
import type { RoundStatus, RoundTask, SecAggOutcome, SecAggStatus } from "@fedge/protocol";
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

const PORT = 8846;
const BITS = 24;
const SCALE = 2 ** 12;
let fx: EdgeFixture;
let toy: ToyModel;
let round: RoundStatus;
let bundle: string;
let context: BrowserContext;
let userDataDir: string;

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>fedge secagg</title></head>
<body><script type="module">
import * as sdk from "/__sdk/fedge-client.js";
window.fedge = sdk;
document.body.dataset.ready = "1";
</script></body></html>`;

beforeAll(async () => {
  const built = await build({
    entryPoints: [createRequire(import.meta.url).resolve("@fedge/client")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    write: false,
    external: ["onnxruntime-web", "onnxruntime-node", "node:*", "crypto"],
    logLevel: "silent",
  });
  bundle = built.outputFiles[0]!.text;
  fx = await startEdgeFixture(PORT);
  toy = await uploadToyModel(fx, "secagg-toy");
  const length = trainableLength(toy.params, "all");
  round = await openRound(
    fx,
    toy,
    distributedRoundFields(length, { bits: BITS, expectedClients: 7, minClients: 5 }).fields,
  );
  userDataDir = await mkdtemp(path.join(tmpdir(), "fedge-chromium-secagg-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"],
  });
}, 240_000);

afterAll(async () => {
  await context?.close();
  await fx?.stop();
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
});

/** A fetch whose network fails for POSTs to one secure-aggregation stage: the device drops there. */
function failingAt(stage: string): typeof fetch {
  return (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (init?.method === "POST" && url.endsWith(`/secagg/${stage}`))
      return Promise.reject(new TypeError("network down"));
    return fetch(input, init);
  };
}

describe("participate() in a distributed round, Node and Chromium devices against wrangler dev", () => {
  it("finishes with dropouts, and the operator's sum is the sum of the masked encodings", async () => {
    const { data, labels } = toyData(toy.sizes, 24, 31);
    const encodedBy = new Map<number, Uint32Array>();
    const encoderFor = (i: number) => {
      const plain = plainModularEncoder(SCALE);
      return (clipped: Float32Array, task: RoundTask) => {
        const out = plain(clipped, task);
        encodedBy.set(i, out);
        return out;
      };
    };
    const nodeClients = [0, 1, 2, 3, 4].map(
      (i) =>
        new FedgeClient({
          baseUrl: fx.url,
          apiKey: fx.apiKey,
          storage: memoryStorage(),
          edgePublicKey: fx.edgePublicKey,
          privacyPolicy: { allowedModes: ["distributed"] },
          maxRetries: 0,
          ...(i === 3 ? { fetch: failingAt("masked-input") } : i === 4 ? { fetch: failingAt("consistency") } : {}),
        }),
    );
    // Settled from the start: the two dropouts reject while the driver is still closing stages.
    const node = Promise.allSettled(
      nodeClients.map((c, i) =>
        c.participate({
          model: toy.name,
          data,
          labels,
          encoder: encoderFor(i),
          secureAggregation: { pollMs: 150, timeoutMs: 240_000 },
        }),
      ),
    );

    const page = await context.newPage();
    await page.route(`${fx.url}/__sdk/**`, (route) => {
      const url = new URL(route.request().url());
      if (url.pathname === "/__sdk/index.html")
        return route.fulfill({ status: 200, contentType: "text/html", body: PAGE });
      if (url.pathname === "/__sdk/fedge-client.js") {
        return route.fulfill({ status: 200, contentType: "text/javascript", body: bundle });
      }
      return route.fulfill({ status: 404, body: "not found" });
    });
    await page.goto(`${fx.url}/__sdk/index.html`);
    await page.waitForSelector("body[data-ready='1']", { state: "attached", timeout: 30_000 });
    // Debian's Chromium (≥ 133) computes X25519 in WebCrypto, so the browser devices below agree their SecAgg+ keys
    // natively (@fedge/secagg probes exactly this, RFC 7748 §6.1's vector, before it leaves tweetnacl aside).
    const nativeX25519 = await page.evaluate(async () => {
      const hex = (s: string) => Uint8Array.from(s.match(/../g)!, (b) => parseInt(b, 16));
      const pkcs8 = hex(
        "302e020100300506032b656e04220420" + "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
      );
      const mine = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, false, ["deriveBits"]);
      const theirs = await crypto.subtle.importKey(
        "raw",
        hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"),
        { name: "X25519" },
        false,
        [],
      );
      const shared = new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: theirs }, mine, 256));
      return Array.from(shared, (b) => b.toString(16).padStart(2, "0")).join("");
    });
    expect(nativeX25519).toBe("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    const browser = page.evaluate(
      async ({ apiKey, edgePublicKey, model, data, labels, scale }) => {
        const { FedgeClient, memoryStorage, plainModularEncoder } = (
          window as unknown as { fedge: typeof import("@fedge/client") }
        ).fedge;
        const common = {
          baseUrl: location.origin,
          apiKey,
          edgePublicKey,
          privacyPolicy: { allowedModes: ["distributed" as const] },
        };
        // One device on the default browser storage (IndexedDB, WebCrypto key), one in memory.
        const clients = [new FedgeClient(common), new FedgeClient({ ...common, storage: memoryStorage() })];
        const encoded: number[][] = [];
        const results = await Promise.all(
          clients.map((c, i) =>
            c.participate({
              model,
              data: Float32Array.from(data),
              labels: Uint8Array.from(labels),
              encoder: (clipped, task) => {
                const out = plainModularEncoder(scale)(clipped, task);
                encoded[i] = Array.from(out);
                return out;
              },
              secureAggregation: { pollMs: 150, timeoutMs: 240_000 },
            }),
          ),
        );
        const keys = await Promise.all(clients.map(async (c) => (await c.register()).deviceId));
        return { results: JSON.parse(JSON.stringify(results)) as unknown[], encoded, keys };
      },
      {
        apiKey: fx.apiKey,
        edgePublicKey: fx.edgePublicKey,
        model: toy.name,
        data: Array.from(data),
        labels: Array.from(labels),
        scale: SCALE,
      },
    );

    // The operator: close each stage once every device still in the round answered it.
    const expected: [string, number][] = [
      ["advertise", 7],
      ["share-keys", 7],
      ["masked-input", 6],
      ["consistency", 5],
      ["unmask", 5],
    ];
    const base = `/v1/admin/rounds/${round.round_id}/secagg`;
    for (const [stage, count] of expected) {
      const until = Date.now() + 180_000;
      for (;;) {
        const status = await fx.admin<SecAggStatus>("GET", base);
        if (status.stage === stage && status.answered === count) break;
        if (Date.now() > until) throw new Error(`stuck at ${JSON.stringify(status)} waiting for ${count} in ${stage}`);
        await new Promise((r) => setTimeout(r, 150));
      }
      await fx.admin("POST", `${base}/close`);
    }

    const settled = await node;
    const fromBrowser = await browser;
    const ok = (r: PromiseSettledResult<ParticipateResult>) =>
      r.status === "fulfilled" && r.value.selected && r.value.status;
    expect(settled.slice(0, 3).map(ok)).toEqual(["aggregated", "aggregated", "aggregated"]);
    expect(settled[3]!.status).toBe("rejected");
    expect(settled[4]!.status).toBe("rejected");
    expect(fromBrowser.results.map((r) => (r as { status: string }).status)).toEqual(["aggregated", "aggregated"]);

    const outcome = await fx.admin<SecAggOutcome>("GET", `${base}/sum`);
    expect(outcome.survivors).toHaveLength(6);
    const length = outcome.encoded_length;
    const want = new Uint32Array(length);
    const masked = [0, 1, 2, 4]
      .map((i) => encodedBy.get(i)!)
      .concat(fromBrowser.encoded.map((e) => Uint32Array.from(e)));
    for (const v of masked) for (let j = 0; j < length; j++) want[j] = (want[j]! + v[j]!) % 2 ** BITS;
    const sum = decodeVector(outcome.sum, length, BITS);
    expect(Array.from(sum)).toEqual(Array.from(want));
    // The sum is of real clipped updates: not all zero.
    expect(sum.some((v) => v !== 0)).toBe(true);
    expect(fromBrowser.keys.every((id) => outcome.survivors.includes(id))).toBe(true);
  });
});
