/**
 * The SDK in a real browser: @fedge/client bundled for the browser with esbuild (one ESM file, onnxruntime left out),
 * loaded by Debian's headless Chromium (playwright-core) into a page on the edge's own origin, talking to the real local
 * edge (`wrangler dev`). Playwright fulfils only the page and the bundle (`/__sdk/*`); every API call goes over the
 * network to workerd. Asserts a remote predict and a full participate() round trip (check in, train in the page, clip,
 * sign with the device's WebCrypto Ed25519 key, upload, receipt), that the device identity persists in IndexedDB
 * across a page reload, and that its private key there is a non-extractable CryptoKey (never bytes).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import path from "node:path";
import { build } from "esbuild";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RoundStatus } from "@fedge/protocol";
import {
  openRound,
  startEdgeFixture,
  toyData,
  uploadToyModel,
  type EdgeFixture,
  type ToyModel,
} from "@fedge/local-edge";

const PORT = 8812;
let fx: EdgeFixture;
let toy: ToyModel;
let round: RoundStatus;
let context: BrowserContext;
let userDataDir: string;
let bundle: string;

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>fedge SDK</title></head>
<body><script type="module">
import * as sdk from "/__sdk/fedge-client.js";
window.fedge = sdk;
document.body.dataset.ready = "1";
</script></body></html>`;

beforeAll(async () => {
  const built = await build({
    // the SDK's entry as its package exports name it
    entryPoints: [createRequire(import.meta.url).resolve("@fedge/client")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    write: false,
    // onnxruntime loads lazily and only for predictLocal; tweetnacl's Node branch (require("crypto")) is never reached
    // in a browser, which has crypto.getRandomValues.
    external: ["onnxruntime-web", "onnxruntime-node", "node:*", "crypto"],
    logLevel: "silent",
  });
  bundle = built.outputFiles[0]!.text;

  fx = await startEdgeFixture(PORT);
  toy = await uploadToyModel(fx, "browser-toy");
  round = await openRound(fx, toy);
  userDataDir = await mkdtemp(path.join(tmpdir(), "fedge-chromium-"));
  // A fresh, empty profile (playwright passes it as --user-data-dir).
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}, 240_000);

afterAll(async () => {
  await context?.close();
  await fx?.stop();
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
});

async function openPage(): Promise<Page> {
  const page = await context.newPage();
  await page.route(`${fx.url}/__sdk/**`, (route) => {
    const url = new URL(route.request().url());
    if (url.pathname === "/__sdk/index.html") {
      return route.fulfill({ status: 200, contentType: "text/html", body: PAGE });
    }
    if (url.pathname === "/__sdk/fedge-client.js") {
      return route.fulfill({ status: 200, contentType: "text/javascript", body: bundle });
    }
    return route.fulfill({ status: 404, body: "not found" });
  });
  await page.goto(`${fx.url}/__sdk/index.html`);
  await page.waitForSelector("body[data-ready='1']", { state: "attached", timeout: 30_000 });
  return page;
}

describe("@fedge/client in headless Chromium against wrangler dev", () => {
  it("the browser bundle is small and self-contained", () => {
    expect(bundle.length).toBeGreaterThan(1000);
    expect(bundle).not.toMatch(/from\s*["']onnxruntime/); // loaded lazily, never statically
  });

  it("predict and a full participate() round trip succeed in the page", async () => {
    const page = await openPage();
    const rows = [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]];
    const { data, labels } = toyData(toy.sizes, 24, 21);
    const result = await page.evaluate(
      async ({ apiKey, rows, data, labels }) => {
        const { FedgeClient } = (window as unknown as { fedge: typeof import("@fedge/client") }).fedge;
        const client = new FedgeClient({ baseUrl: location.origin, apiKey });
        const prediction = await client.predict("browser-toy", rows);
        const identity = await client.register();
        const participation = await client.participate({
          model: "browser-toy",
          data: Float32Array.from(data),
          labels: Uint8Array.from(labels),
        });
        const again = await client.participate({
          model: "browser-toy",
          data: Float32Array.from(data),
          labels: Uint8Array.from(labels),
        });
        return {
          prediction,
          identity,
          participation: JSON.parse(JSON.stringify(participation)),
          again,
          runtime: navigator.userAgent,
          queued: (await client.queue.list()).length,
        };
      },
      { apiKey: fx.apiKey, rows, data: Array.from(data), labels: Array.from(labels) },
    );
    expect(result.runtime).toMatch(/HeadlessChrome|Chrome/);
    expect(result.prediction.model).toBe("browser-toy");
    expect(result.prediction.outputs).toHaveLength(1);
    expect(result.prediction.outputs[0]).toHaveLength(3);
    expect(result.identity.deviceId).toMatch(/^dev_/);
    expect(result.participation).toMatchObject({
      selected: true,
      status: "uploaded",
      roundId: round.round_id,
      receipt: { round_id: round.round_id, device_id: result.identity.deviceId, duplicate: false },
      stats: { samples: 24, updateLength: round.params.update_length },
    });
    expect(result.again).toMatchObject({ selected: false, reason: "already_reported" });
    expect(result.queued).toBe(0);
    const status = await fx.admin<RoundStatus>("GET", `/v1/admin/rounds/${round.round_id}`);
    expect(status.accepted).toBe(1);

    // The identity lives in IndexedDB: after a reload the page is the same device.
    await page.reload();
    await page.waitForSelector("body[data-ready='1']", { state: "attached", timeout: 30_000 });
    const reloaded = await page.evaluate(async (apiKey) => {
      const { FedgeClient } = (window as unknown as { fedge: typeof import("@fedge/client") }).fedge;
      return new FedgeClient({ baseUrl: location.origin, apiKey }).register();
    }, fx.apiKey);
    expect(reloaded).toEqual(result.identity);

    // The private key is a non-extractable CryptoKey in IndexedDB: the page can sign with it, nobody can read it out.
    const stored = await page.evaluate(async () => {
      const { indexedDbStorage } = (window as unknown as { fedge: typeof import("@fedge/client") }).fedge;
      const s = indexedDbStorage();
      const identity = JSON.parse(new TextDecoder().decode((await s.get("device/identity"))!)) as Record<
        string,
        unknown
      >;
      const pair = await s.getKeyPair("device/signing-key");
      let exported = false;
      try {
        await crypto.subtle.exportKey("pkcs8", pair!.privateKey);
        exported = true;
      } catch {
        /* non-extractable */
      }
      return {
        version: identity.v,
        hasSecretBytes: "secret_key" in identity,
        algorithm: pair?.privateKey.algorithm.name,
        extractable: pair?.privateKey.extractable,
        exported,
      };
    });
    expect(stored).toEqual({
      version: 2,
      hasSecretBytes: false,
      algorithm: "Ed25519",
      extractable: false,
      exported: false,
    });
    await page.close();
  });

  it("typed errors reach the page with the edge's code", async () => {
    const page = await openPage();
    const err = await page.evaluate(async (apiKey) => {
      const { FedgeClient, NotFoundError } = (window as unknown as { fedge: typeof import("@fedge/client") }).fedge;
      try {
        await new FedgeClient({ baseUrl: location.origin, apiKey }).predict("missing-model", [[1]]);
        return null;
      } catch (e) {
        const x = e as InstanceType<typeof NotFoundError>;
        return { isNotFound: e instanceof NotFoundError, status: x.status, code: x.code, name: x.name };
      }
    }, fx.apiKey);
    expect(err).toEqual({ isNotFound: true, status: 404, code: "model_not_found", name: "NotFoundError" });
    await page.close();
  });
});
