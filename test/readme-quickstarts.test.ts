/**
 * The README's quickstarts run as written. Each code block after a `<!-- quickstart:NAME -->` marker is taken from
 * README.md (and must be at most 15 lines) and run against a local edge (`wrangler dev`), with @fedge/client and the
 * fedge CLI installed from their tarballs into a fresh project (see helpers/packed.ts):
 *
 * - serve: the manifest block becomes manifest.json beside a small float32 ONNX model; the curl block uploads,
 *   promotes and predicts (bash, `curl -f`); the SDK block runs as predict.mjs on the machine's Node;
 * - aggregate: the shell block runs with the packed `fedge` on PATH; it prices the plan, then opens a round and waits;
 * - web: while that round is open, the web block runs in headless Chromium (bundled with esbuild, with FEDGE_URL,
 *   FEDGE_API_KEY, data and labels defined before it) and takes part; the aggregator then publishes version 2.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { build } from "esbuild";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RoundStatus } from "@fedge/protocol";
import { buildMlpOnnx, initMlp, xoshiroRandomBytes } from "@fedge/ml";
import { repoRoot, startEdgeFixture, toyData, type EdgeFixture } from "@fedge/local-edge";
import { consumerEnv, installConsumer, packedPackages, systemNode } from "./helpers/packed.ts";

const PORT = 8842;
const MAX_LINES = 15;

/** The code block that follows `<!-- quickstart:name -->` in README.md. */
export function quickstart(readme: string, name: string): { lang: string; code: string } {
  const m = new RegExp(`<!-- quickstart:${name} -->\\s*\\n\`\`\`(\\w+)\\n([\\s\\S]*?)\\n\`\`\``).exec(readme);
  if (!m) throw new Error(`README.md has no code block after <!-- quickstart:${name} -->`);
  return { lang: m[1]!, code: `${m[2]!}\n` };
}

let readme: string;
let app: string;
let fx: EdgeFixture;
let browser: Browser;
let env: NodeJS.ProcessEnv;
const node = systemNode()?.path ?? process.execPath;

beforeAll(async () => {
  readme = await readFile(path.join(repoRoot, "README.md"), "utf8");
  const { tarballs: t } = packedPackages();
  app = await mkdtemp(path.join(tmpdir(), "fedge-quickstart-"));
  installConsumer(
    app,
    [
      "@fedge/client",
      "@fedge/protocol",
      "@fedge/privacy",
      "@fedge/ml",
      "@fedge/secagg",
      "@fedge/gpu-node",
      "fedge",
    ].map((n) => t[n]!),
  );
  fx = await startEdgeFixture(PORT);
  const base = consumerEnv();
  env = {
    ...base,
    PATH: `${path.join(app, "node_modules/.bin")}${path.delimiter}${base.PATH}`,
    HOME: app,
    FEDGE_URL: fx.url,
    FEDGE_ADMIN_TOKEN: fx.adminToken,
    FEDGE_API_KEY: fx.apiKey,
  };
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
  });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await fx?.stop();
  if (app) await rm(app, { recursive: true, force: true });
});

function sh(code: string) {
  const r = spawnSync("bash", ["-euo", "pipefail", "-c", code], { cwd: app, env, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("README quickstarts, run as written", () => {
  it("every quickstart block is at most 15 lines", () => {
    for (const name of ["serve-manifest", "serve-curl", "serve-sdk", "web", "aggregate"]) {
      const lines = quickstart(readme, name).code.trimEnd().split("\n").length;
      expect(lines, name).toBeLessThanOrEqual(MAX_LINES);
    }
  });

  it("serve your own ONNX model: upload, promote and predict with curl, then with the SDK", async () => {
    const manifest = quickstart(readme, "serve-manifest");
    expect(manifest.lang).toBe("json");
    await writeFile(path.join(app, "manifest.json"), manifest.code);
    // "your model": an 8→6→3 float32 MLP matching the manifest.
    const params = initMlp([8, 6, 3], { random: xoshiroRandomBytes(3) });
    await writeFile(path.join(app, "model.onnx"), buildMlpOnnx(params, { quantization: "none" }));

    const curl = sh(quickstart(readme, "serve-curl").code);
    expect(curl.code, curl.stderr).toBe(0);
    const answers = curl.stdout.replace(/}\s*{/g, "}\n{").split("\n").filter(Boolean);
    const predicted = JSON.parse(answers.at(-1)!) as { model: string; version: number; outputs: number[][] };
    expect(predicted).toMatchObject({ model: "my-model", version: 1 });
    expect(predicted.outputs[0]).toHaveLength(3);

    const sdk = quickstart(readme, "serve-sdk");
    await writeFile(path.join(app, "predict.mjs"), sdk.code);
    const r = spawnSync(node, ["predict.mjs"], { cwd: app, env, encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^my-model v1: \[/);
    for (const v of predicted.outputs[0]!) expect(r.stdout).toContain(String(v).slice(0, 6));
  });

  it("run the aggregator while a web app trains: the round is published as version 2", async () => {
    const agg = quickstart(readme, "aggregate");
    const child = spawn("bash", ["-euo", "pipefail", "-c", agg.code], { cwd: app, env, stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      // The aggregator opens a round; wait for it.
      let open: RoundStatus | undefined;
      for (let i = 0; i < 240 && !open; i++) {
        const list = await fx.admin<{ rounds: RoundStatus[] }>("GET", "/v1/admin/rounds?model=my-model");
        open = list.rounds.find((r) => r.state === "open" || r.state === "collecting");
        if (!open) await new Promise((r) => setTimeout(r, 250));
        if (child.exitCode !== null) break;
      }
      expect(open, `no round opened:\n${stdout}\n${stderr}`).toBeDefined();

      // The web quickstart in a page, with the values it says the app defines.
      const { data, labels } = toyData([8, 6, 3], 24, 17);
      const web = quickstart(readme, "web");
      const entry = path.join(app, "web-quickstart.js");
      await writeFile(
        entry,
        [
          `const FEDGE_URL = location.origin;`,
          `const FEDGE_API_KEY = ${JSON.stringify(fx.apiKey)};`,
          `const data = Float32Array.from(${JSON.stringify(Array.from(data))});`,
          `const labels = Uint8Array.from(${JSON.stringify(Array.from(labels))});`,
          web.code,
          `document.body.dataset.done = "1";`,
        ].join("\n"),
      );
      const bundle = await build({
        entryPoints: [entry],
        absWorkingDir: app,
        bundle: true,
        format: "esm",
        platform: "browser",
        target: "es2022",
        write: false,
        external: ["onnxruntime-web", "onnxruntime-node", "node:*", "crypto"],
        logLevel: "silent",
      });
      const page = await browser.newPage();
      const logs: string[] = [];
      page.on("console", (m) => logs.push(m.text()));
      page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
      await page.route(`${fx.url}/quickstart/**`, (route) =>
        route.request().url().endsWith(".js")
          ? route.fulfill({ status: 200, contentType: "text/javascript", body: bundle.outputFiles[0]!.text })
          : route.fulfill({
              status: 200,
              contentType: "text/html",
              body: `<!doctype html><body><script type="module" src="/quickstart/app.js"></script></body>`,
            }),
      );
      await page.goto(`${fx.url}/quickstart/`);
      await page.waitForSelector("body[data-done='1']", { state: "attached", timeout: 60_000 });
      expect(
        logs.find((l) => l.startsWith("update accepted:")),
        logs.join("\n"),
      ).toMatch(/^update accepted: [0-9a-f]{64}$/);
      // One receipt (the round the device checked in for), verified and accounted on the device.
      expect(
        logs.find((l) => l.startsWith("my-model: ε = ")),
        logs.join("\n"),
      ).toMatch(/^my-model: ε = \d+\.\d\d at δ = 0\.00001$/);
      await page.close();

      // A DP round closes at its deadline (Poisson sampling: no max_reports); the operator closes it early here, then
      // the aggregator publishes version 2 and exits 0.
      await fx.admin("POST", `/v1/admin/rounds/${open!.round_id}/close`);
      const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r("timeout"), 150_000))]);
      expect(code, `${stdout}\n${stderr}`).toBe(0);
      const lines = stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines[0]).toMatchObject({ accountant: "rdp", steps: 10 }); // fedge privacy
      expect(lines[1]).toMatchObject({ type: "round", outcome: "published", version: 2, accepted: 1 });
      expect(lines[1]!.epsilon as number).toBeLessThanOrEqual(8);
      const detail = await fx.admin<{ serving_version: number }>("GET", "/v1/models/my-model");
      expect(detail.serving_version).toBe(2);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
