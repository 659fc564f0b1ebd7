/**
 * The packed SDK in a real web app: a fresh Vite project outside the repository installs @fedge/client (and the
 * pure packages it depends on) from the tarballs of `npm run pack` with `npm install`, `vite build` bundles it as
 * any app would (Vite 8 from the root devDependencies, no config file), and Debian's headless Chromium
 * (playwright-core) runs the built app against the local edge (`wrangler dev`): a remote predict, then a training
 * round (check in, train in the page, clip, sign, upload, receipt). Playwright serves only the built files, on the
 * edge's origin under /app/; every API call goes over the network to workerd.
 */
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RoundStatus } from "@fedge/protocol";
import {
  openRound,
  repoRoot,
  startEdgeFixture,
  toyData,
  uploadToyModel,
  type EdgeFixture,
  type ToyModel,
} from "@fedge/local-edge";
import { consumerEnv, installConsumer, packedPackages } from "./helpers/packed.ts";

const PORT = 8841;
let app: string;
let fx: EdgeFixture;
let toy: ToyModel;
let round: RoundStatus;
let browser: Browser;
let buildLog = "";

const INDEX_HTML = `<!doctype html>
<html>
  <head><meta charset="utf-8" /><title>fedge web app</title></head>
  <body>
    <pre id="out"></pre>
    <script type="module" src="/src/main.js"></script>
  </body>
</html>
`;

// The app: what a web developer writes with the SDK. The test calls window.trainAndPredict.
const MAIN_JS = `import { FedgeClient } from "@fedge/client";

window.trainAndPredict = async ({ apiKey, model, row, data, labels }) => {
  const fedge = new FedgeClient({ baseUrl: location.origin, apiKey });
  const prediction = await fedge.predict(model, [row]);
  const round = await fedge.participate({ model, data: Float32Array.from(data), labels: Uint8Array.from(labels) });
  const result = { prediction, round: JSON.parse(JSON.stringify(round)), device: await fedge.register() };
  document.getElementById("out").textContent = JSON.stringify(result);
  return result;
};
document.body.dataset.ready = "1";
`;

beforeAll(async () => {
  const { tarballs: t } = packedPackages();
  app = await mkdtemp(path.join(tmpdir(), "fedge-vite-app-"));
  installConsumer(
    app,
    [t["@fedge/client"]!, t["@fedge/protocol"]!, t["@fedge/privacy"]!, t["@fedge/ml"]!, t["@fedge/secagg"]!],
    {
      scripts: { build: "vite build" },
    },
  );
  await writeFile(path.join(app, "index.html"), INDEX_HTML);
  await mkdir(path.join(app, "src"));
  await writeFile(path.join(app, "src/main.js"), MAIN_JS);
  const vite = spawnSync(
    process.execPath,
    [path.join(repoRoot, "node_modules/vite/bin/vite.js"), "build", "--base", "/app/"],
    { cwd: app, encoding: "utf8", env: { ...consumerEnv(), NODE_ENV: "production" }, timeout: 120_000 },
  );
  buildLog = `${vite.stdout}\n${vite.stderr}`;
  if (vite.status !== 0) throw new Error(`vite build failed (${vite.status}):\n${buildLog}`);

  fx = await startEdgeFixture(PORT);
  toy = await uploadToyModel(fx, "vite-toy");
  round = await openRound(fx, toy);
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await fx?.stop();
  if (app) await rm(app, { recursive: true, force: true });
});

describe("a Vite app with the packed @fedge/client in headless Chromium", () => {
  it("vite build bundles the SDK from the tarball, without onnxruntime", async () => {
    const installed = JSON.parse(await readFile(path.join(app, "node_modules/@fedge/client/package.json"), "utf8")) as {
      exports: Record<string, unknown>;
    };
    expect(installed.exports["."]).toEqual({
      types: "./dist/index.d.ts",
      import: "./dist/index.js",
      default: "./dist/index.js",
    });
    const assets = await readdir(path.join(app, "dist/assets"));
    const js = assets.filter((f) => f.endsWith(".js"));
    expect(js.length).toBeGreaterThan(0);
    const code = (await Promise.all(js.map((f) => readFile(path.join(app, "dist/assets", f), "utf8")))).join("\n");
    expect(code).toContain("/v1/models/");
    expect(code).not.toMatch(/InferenceSession\.create\s*=|ort-wasm/); // onnxruntime stays out unless predictLocal is used
    const kb = (await Promise.all(js.map((f) => readFile(path.join(app, "dist/assets", f))))).reduce(
      (n, b) => n + b.length,
      0,
    );
    console.log(`[vite] ${js.length} chunks, ${(kb / 1024).toFixed(1)} kB of JS`);
  });

  it("the built app predicts, then takes part in a training round", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.route(`${fx.url}/app/**`, async (route) => {
      const rel = new URL(route.request().url()).pathname.replace(/^\/app\/?/, "") || "index.html";
      const file = path.join(app, "dist", path.normalize(rel));
      if (!file.startsWith(path.join(app, "dist"))) return route.fulfill({ status: 403, body: "" });
      try {
        const body = await readFile(file);
        const contentType = file.endsWith(".html") ? "text/html" : file.endsWith(".js") ? "text/javascript" : undefined;
        return route.fulfill({ status: 200, body, ...(contentType ? { contentType } : {}) });
      } catch {
        return route.fulfill({ status: 404, body: "not found" });
      }
    });
    await page.goto(`${fx.url}/app/`);
    await page.waitForSelector("body[data-ready='1']", { state: "attached", timeout: 30_000 });
    const { data, labels } = toyData(toy.sizes, 24, 33);
    const result = await page.evaluate(
      (args) =>
        (
          window as unknown as {
            trainAndPredict: (a: typeof args) => Promise<{
              prediction: { model: string; version: number; outputs: number[][] };
              round: { selected: boolean; status: string; roundId: string; receipt: { device_id: string } };
              device: { deviceId: string };
            }>;
          }
        ).trainAndPredict(args),
      {
        apiKey: fx.apiKey,
        model: toy.name,
        row: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
        data: Array.from(data),
        labels: Array.from(labels),
      },
    );
    expect(errors).toEqual([]);
    expect(result.prediction).toMatchObject({ model: toy.name, version: 1 });
    expect(result.prediction.outputs[0]).toHaveLength(3);
    expect(result.round).toMatchObject({ selected: true, status: "uploaded", roundId: round.round_id });
    expect(result.round.receipt.device_id).toBe(result.device.deviceId);
    const status = await fx.admin<RoundStatus>("GET", `/v1/admin/rounds/${round.round_id}`);
    expect(status.accepted).toBe(1);
    expect(await page.textContent("#out")).toContain(round.round_id);
    await page.close();
  });
});
