/**
 * @module
 * The headless-Chromium fixture of the browser tests: @fedge/client bundled for the browser with esbuild (one ESM
 * file, onnxruntime left out), Debian's Chromium launched through playwright-core on a fresh profile, and pages on the
 * edge's own origin where Playwright fulfils only the page and the bundle (`/__sdk/*`); every API call goes over the
 * network to the real edge. A page exposes the SDK as `window.fedge`.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { build } from "esbuild";
import { chromium, type BrowserContext, type Page } from "playwright-core";

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>fedge SDK</title></head>
<body><script type="module">
import * as sdk from "/__sdk/fedge-client.js";
window.fedge = sdk;
document.body.dataset.ready = "1";
</script></body></html>`;

export interface BrowserFixture {
  /** The SDK's browser bundle (minified ESM). */
  bundle: string;
  context: BrowserContext;
  /** A new page on `origin` with the SDK loaded as `window.fedge`. */
  openPage(origin: string): Promise<Page>;
  /** Closes the browser and deletes its profile. */
  close(): Promise<void>;
}

/** The SDK's entry as its package exports name it, bundled for the browser. */
export async function bundleSdk(): Promise<string> {
  const built = await build({
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
  return built.outputFiles[0]!.text;
}

/** Bundles the SDK and launches Chromium on a fresh, empty profile (playwright passes it as --user-data-dir). */
export async function startBrowser(name: string): Promise<BrowserFixture> {
  const bundle = await bundleSdk();
  const userDataDir = await mkdtemp(path.join(tmpdir(), `fedge-chromium-${name}-`));
  let context: BrowserContext;
  try {
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
  } catch (e) {
    await rm(userDataDir, { recursive: true, force: true });
    throw e;
  }
  return {
    bundle,
    context,
    async openPage(origin: string): Promise<Page> {
      const page = await context.newPage();
      await page.route(`${origin}/__sdk/**`, (route) => {
        const url = new URL(route.request().url());
        if (url.pathname === "/__sdk/index.html") {
          return route.fulfill({ status: 200, contentType: "text/html", body: PAGE });
        }
        if (url.pathname === "/__sdk/fedge-client.js") {
          return route.fulfill({ status: 200, contentType: "text/javascript", body: bundle });
        }
        return route.fulfill({ status: 404, body: "not found" });
      });
      await page.goto(`${origin}/__sdk/index.html`);
      await page.waitForSelector("body[data-ready='1']", { state: "attached", timeout: 30_000 });
      return page;
    },
    async close(): Promise<void> {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}
