/**
 * The SDK in a real browser: @fedge/client bundled for the browser with esbuild (one ESM file, onnxruntime left out),
 * loaded by Debian's headless Chromium (playwright-core) into a page on the edge's own origin, talking to the real local
 * edge (`wrangler dev`). Playwright fulfils only the page and the bundle (`/__sdk/*`); every API call goes over the
 * network to workerd. Asserts a remote predict and a full participate() round trip (check in, train in the page, clip,
 * sign with the device's WebCrypto Ed25519 key, upload, receipt), that the device identity persists in IndexedDB
 * across a page reload, and that its private key there is a non-extractable CryptoKey (never bytes).
 */
import type { Page } from "playwright-core";
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
import { startBrowser, type BrowserFixture } from "./helpers/browser.ts";

const PORT = 8812;
let fx: EdgeFixture;
let toy: ToyModel;
let round: RoundStatus;
let browser: BrowserFixture;
let bundle: string;

beforeAll(async () => {
  browser = await startBrowser("sdk");
  bundle = browser.bundle;
  fx = await startEdgeFixture(PORT);
  toy = await uploadToyModel(fx, "browser-toy");
  round = await openRound(fx, toy);
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await fx?.stop();
});

function openPage(): Promise<Page> {
  return browser.openPage(fx.url);
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
