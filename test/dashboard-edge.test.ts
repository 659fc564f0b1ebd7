/**
 * The operator dashboard in real headless Chromium (playwright-core + Debian's chromium) against the real local edge
 * (`wrangler dev` on port 8850, fresh state). An operator logs in with the admin token through the login form; devices
 * (the real SDK) check in to two charged DP rounds and to a round without DP. Asserts: every page loads (and is saved as
 * a screenshot under test-results/dashboard/); the ε chart's points are the ε the population's public ledger implies
 * after each round; the rollback and promote buttons move the serving version; the revoke button revokes a device,
 * whose next check-in is refused; a wrong token, a forged cookie, a logged-out session, a POST without the CSRF token
 * and a cross-site POST are refused and change nothing; the session cookie is HttpOnly and SameSite=Strict and no URL
 * carries the token; and the exact device counts of the DP population appear in no page. A third population runs one
 * adaptive-clipping DP round through the real aggregator (`EdgeRoundRunner`, real SDK devices): the rounds page shows
 * the noised unclipped count it released (labelled noised, with σ_b) and the next C, never the round's exact counts.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import nacl from "tweetnacl";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FedgeAPIError, FedgeClient, memoryStorage } from "@fedge/client";
import { PrivacyLedger } from "@fedge/privacy";
import {
  canonicalManifestBytes,
  toBase64Url,
  type ModelManifest,
  type OpenRoundRequest,
  type PopulationPrivacyStatus,
  type RoundStatus,
} from "@fedge/protocol";
import { createBackend } from "@fedge/gpu-node";
import { parsePopulationConfig } from "fedge/config";
import { EdgeAdminClient, EdgeRoundRunner, edgeRunnerStateOf, type EdgeRunnerRoundResult } from "fedge/edge";
import { exportModel, type SigningKey } from "fedge/export";
import { RoundEngine } from "fedge/round";
import { repoRoot, type LocalEdge } from "@fedge/local-edge";
import { buildMlpOnnx, initMlp, xoshiroRandomBytes } from "@fedge/ml";
import { startTestEdge, type TestEdge } from "./helpers/test-edge.ts";

const PORT = 8850;
const ADMIN_TOKEN = `fa_${toBase64Url(crypto.getRandomValues(new Uint8Array(24)))}`;
const EDGE_SEED = crypto.getRandomValues(new Uint8Array(32));
const SHOTS = path.join(repoRoot, "test-results", "dashboard");
const DP = "dash-dp";
const PLAIN = "dash-plain";
/** Devices in each DP round: the exact count the pages must never show. */
const DP_DEVICES = 7;
/** The noise multiplier of each charged DP round, oldest first. */
const Z_STEPS = [1.4, 1.25, 1.1, 1.0];
/** Devices in the round without DP (its counts are shown). */
const PLAIN_DEVICES = 2;
/** The adaptive-clipping population, aggregated by the real round driver. */
const ADAPT = "dash-adapt";
/** Its devices' update norms (one device each): the round's exact counts, never shown, are 5. */
const ADAPT_NORMS = [0.8, 0.9, 1.2, 1.5, 2];
/** m = q·N the aggregator divides by (public; unlike the count of devices that took part). */
const ADAPT_EXPECTED = 6;
/** σ_b, the noise on the released count. */
const ADAPT_SIGMA_B = 1.5;

let testEdge: TestEdge;
let edge: LocalEdge;
/** The aggregator key the edge trusts. */
let aggregator: SigningKey;
let operator: EdgeAdminClient;
let apiKey: string;
let apiKeyId: string;
let browser: Browser;
let context: BrowserContext;
let dpDevices: FedgeClient[];
let adapted: EdgeRunnerRoundResult;

function device(): FedgeClient {
  return new FedgeClient({ baseUrl: edge.url, apiKey, storage: memoryStorage() });
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Version `version` of a 4 → 2 MLP; signed by the aggregator key when `sign`. */
async function uploadVersion(model: string, version: number, accuracy: number, sign: boolean): Promise<void> {
  const onnx = buildMlpOnnx(initMlp([4, 2], { random: xoshiroRandomBytes(version) }), { quantization: "none" });
  const manifest: ModelManifest = {
    name: model,
    version,
    inputs: [{ name: "input", shape: [null, 4], dtype: "float32" }],
    outputs: [{ name: "logits", shape: [null, 2], dtype: "float32" }],
    quantization: { scheme: "none", weight_dtype: "float32" },
    sha256: await sha256Hex(onnx),
    size_bytes: onnx.length,
    created_at: new Date().toISOString(),
    evaluation: { accuracy },
  };
  if (sign) {
    manifest.aggregator = {
      public_key: toBase64Url(aggregator.publicKey),
      signature: toBase64Url(nacl.sign.detached(canonicalManifestBytes(manifest), aggregator.secretKey)),
    };
  }
  await operator.uploadModelVersion(manifest, onnx, true);
}

function roundRequest(model: string, over: Partial<OpenRoundRequest>): OpenRoundRequest {
  return {
    model,
    model_version: 1,
    clip_norm: 0.75,
    learning_rate: 0.1,
    local_epochs: 1,
    batch_size: 4,
    privacy_mode: "central",
    trainable: "all",
    update_length: 10,
    update_dtype: "float32",
    sampling_rate: 1,
    min_reports: 1,
    mechanism: { noise_multiplier: 1.1, clip_rule: "fixed" },
    duration_s: 600,
    ...over,
  } as OpenRoundRequest;
}

async function ledger(model: string): Promise<PopulationPrivacyStatus> {
  return (await (await fetch(`${edge.url}/v1/populations/${model}/privacy`)).json()) as PopulationPrivacyStatus;
}

/** Seeds {@link ADAPT} and runs its first round with the real aggregator; returns the runner's summary. */
async function runAdaptiveRound(): Promise<EdgeRunnerRoundResult> {
  const backend = await createBackend({ prefer: "cpu", log: () => undefined });
  const engine = await RoundEngine.create({
    config: parsePopulationConfig({
      model: ADAPT,
      privacy: { mode: "central", noiseMultiplier: 1, budget: { epsilon: 20, delta: 1e-5 } },
      samplingRate: 1,
      expectedClients: ADAPT_EXPECTED,
      clipping: { clipNorm: 1, adaptive: { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: ADAPT_SIGMA_B } },
      client: { learningRate: 1, localEpochs: 1, batchSize: 1 },
      publish: { maxAccuracyDrop: 1 },
    }),
    backend,
    initialModel: {
      layers: [
        { inFeatures: 4, outFeatures: 2, weight: new Float32Array(8), bias: new Float32Array(2), activation: "none" },
      ],
    },
    log: () => undefined,
  });
  try {
    const seed = await exportModel({ model: engine.model, name: ADAPT, version: 1, backend, signingKey: aggregator });
    await operator.uploadModelVersion(seed.manifest, seed.onnx, true);
    await operator.setPrivacyBudget(ADAPT, { epsilon: 20, delta: 1e-5, accountant: "rdp" });
    const key = (await operator.createApiKey("dashboard e2e adaptive devices", 1_000_000)).key;
    const devices = ADAPT_NORMS.map((n) => ({
      client: new FedgeClient({
        baseUrl: edge.url,
        apiKey: key,
        storage: memoryStorage(),
        privacyPolicy: { maxPopulationEpsilon: 100 },
        aggregatorPublicKey: aggregator.publicKey,
      }),
      data: Float32Array.of(Math.sqrt(2 * n * n - 1), 0, 0, 0),
      labels: Uint8Array.of(0),
    }));
    const result = await new EdgeRoundRunner({
      engine,
      admin: testEdge.admin,
      signingKey: aggregator,
      state: edgeRunnerStateOf(engine.config, 1),
      collect: async () => {
        const r = await Promise.all(devices.map((d) => d.client.participate({ model: ADAPT, ...d })));
        for (const x of r) expect(x).toMatchObject({ selected: true, status: "uploaded" });
      },
    }).runRound();
    expect(result).toMatchObject({ outcome: "published", accepted: ADAPT_NORMS.length });
    return result;
  } finally {
    engine.dispose();
    await backend.dispose();
  }
}

/** Logs in through the form in `page`. */
async function login(page: Page, token: string): Promise<number> {
  await page.goto(`${edge.url}/dashboard`);
  expect(new URL(page.url()).pathname).toBe("/dashboard/login");
  await page.fill("#token", token);
  const [response] = await Promise.all([page.waitForNavigation(), page.click("#login")]);
  return response!.status();
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  testEdge = await startTestEdge({
    port: PORT,
    name: "dashboard",
    adminToken: ADMIN_TOKEN,
    vars: { FEDGE_EDGE_SIGNING_KEY: toBase64Url(EDGE_SEED) },
  });
  ({ edge, operator, key: aggregator } = testEdge);
  const created = await operator.createApiKey("dashboard e2e", 1_000_000);
  apiKey = created.key;
  apiKeyId = created.id;

  // A DP population: two versions (v2 signed, serving), a budget, four charged rounds with the same devices.
  await uploadVersion(DP, 1, 0.81, false);
  await uploadVersion(DP, 2, 0.875, true);
  await operator.setPrivacyBudget(DP, { epsilon: 20, delta: 1e-5, accountant: "rdp" });
  dpDevices = Array.from({ length: DP_DEVICES }, device);
  let open: RoundStatus | undefined;
  for (const z of Z_STEPS) {
    if (open) await operator.closeRound(open.round_id);
    open = await operator.openRound(roundRequest(DP, { mechanism: { noise_multiplier: z, clip_rule: "fixed" } }));
    for (const d of dpDevices) await d.checkin(DP);
  }
  // The edge holds the exact counts (what the pages must hide).
  expect(await operator.roundStatus(open!.round_id)).toMatchObject({ checked_in: DP_DEVICES, selected: DP_DEVICES });

  // A population without DP, whose exact counts the pages may show.
  await uploadVersion(PLAIN, 1, 0.5, false);
  const plain = await operator.openRound(
    roundRequest(PLAIN, { privacy_mode: "none", mechanism: undefined, max_reports: 100 }),
  );
  for (let i = 0; i < PLAIN_DEVICES; i++) await device().checkin(PLAIN);
  expect(await operator.roundStatus(plain.round_id)).toMatchObject({ checked_in: PLAIN_DEVICES });

  // An adaptive DP round through the real aggregator and SDK devices (their own API key: the keys page charts the
  // first key's calls). From the zero 4 → 2 model, one SGD step of learning rate 1 on x = (s, 0, 0, 0), label 0 gives
  // ‖Δ‖ = √((s² + 1)/2), so s = √(2n² − 1) makes the device's norm n.
  adapted = await runAdaptiveRound();

  // Calls to chart on the API keys page.
  const caller = device();
  for (let i = 0; i < 4; i++) await caller.predict(DP, [[0.1, 0.2, 0.3, 0.4]]);

  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"],
  });
  context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  // The operator logs in once through the form; every test below uses that session (the last one logs out).
  const page = await context.newPage();
  expect(await login(page, ADMIN_TOKEN)).toBe(200);
  expect(new URL(page.url()).pathname).toBe("/dashboard");
  await page.close();
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await testEdge?.stop();
});

const PAGES = [
  { name: "populations", path: "/dashboard", heading: "Populations" },
  { name: "rounds", path: "/dashboard/rounds", heading: "Rounds" },
  { name: "models", path: "/dashboard/models", heading: "Model versions" },
  { name: "devices", path: "/dashboard/devices", heading: "Devices" },
  { name: "keys", path: "/dashboard/keys", heading: "API keys" },
] as const;

/**
 * Every number a page (or the element `scope` of it, less the elements `without`) shows or carries in a data
 * attribute, with dates and times taken out.
 */
async function numbersOn(page: Page, scope = "html", without?: string): Promise<string[]> {
  const text = await page.evaluate(
    ([selector, skip]) => {
      const root = document.querySelector(selector!)!.cloneNode(true) as Element;
      if (skip) for (const el of Array.from(root.querySelectorAll(skip))) el.remove();
      const data: string[] = [];
      for (const el of [root, ...Array.from(root.querySelectorAll("*"))]) {
        for (const a of Array.from(el.attributes)) if (a.name.startsWith("data-")) data.push(a.value);
      }
      return `${root.textContent ?? ""} ${data.join(" ")}`;
    },
    [scope, without] as const,
  );
  const withoutTimes = text
    .replace(/\d{4}-\d{2}-\d{2}(T[\d:.]+Z)?/g, " ")
    .replace(/\d{2}:\d{2}( UTC)?/g, " ")
    .replace(/\b[a-z0-9-]+_\d+\b/g, " "); // round ids
  // Numbers standing alone (not inside ids, keys or tokens such as `a3f9` or `v2`).
  return withoutTimes.match(/(?<![\w.-])\d+(?:\.\d+)?(?![\w.-])/g) ?? [];
}

describe("operator dashboard in Chromium", () => {
  it("refuses a wrong token and a forged cookie, and keeps nobody signed in", async () => {
    const stranger = await browser.newContext();
    const page = await stranger.newPage();
    expect(await login(page, `${ADMIN_TOKEN}x`)).toBe(403);
    expect(await page.textContent("#login-error")).toContain("not the admin token");
    expect(await stranger.cookies()).toEqual([]);
    await page.goto(`${edge.url}/dashboard/models`);
    expect(new URL(page.url()).pathname).toBe("/dashboard/login");
    // A well-formed cookie with a MAC made without the admin token.
    const forged = `${toBase64Url(new Uint8Array(16))}.${Date.now() + 60_000}.${toBase64Url(new Uint8Array(32))}`;
    await stranger.addCookies([{ name: "fedge-dashboard", value: forged, url: edge.url }]);
    await page.goto(`${edge.url}/dashboard`);
    expect(new URL(page.url()).pathname).toBe("/dashboard/login");
    await stranger.close();
  });

  it("keeps the session in an HttpOnly, SameSite=Strict cookie and loads every page (screenshots in test-results/dashboard/)", async () => {
    const page = await context.newPage();
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: "fedge-dashboard", httpOnly: true, sameSite: "Strict" });
    expect(cookie!.value).not.toContain(ADMIN_TOKEN);
    for (const p of PAGES) {
      const res = await page.goto(edge.url + p.path);
      expect(res!.status(), p.path).toBe(200);
      expect(await page.textContent("h1")).toBe(p.heading);
      expect(res!.headers()["content-security-policy"]).toContain("default-src 'none'");
      expect(page.url()).not.toContain(ADMIN_TOKEN);
      await shot(page, p.name);
    }
    // What the pages show, beyond loading.
    await page.goto(`${edge.url}/dashboard/models`);
    const v2 = page.locator(`section[data-model="${DP}"] tr[data-version="2"]`);
    expect(await v2.textContent()).toContain("87.5 %");
    expect(await v2.textContent()).toContain(toBase64Url(aggregator.publicKey).slice(0, 12));
    expect(await v2.textContent()).toContain("trusted");
    await page.goto(`${edge.url}/dashboard/keys`);
    const bars = page.locator(`section.api-key[data-key="${apiKeyId}"] svg.usage-chart rect.bar`);
    const calls = await bars.evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-calls"))));
    expect(calls.reduce((s, n) => s + n, 0)).toBe(4);
    expect(calls).toHaveLength(14);
    await page.close();
  });

  it("charts ε after each round exactly as the population's public ledger implies", async () => {
    const page = await context.newPage();
    await page.goto(`${edge.url}/dashboard`);
    const points = await page
      .locator(`svg.epsilon-chart[data-population="${DP}"] circle.point`)
      .evaluateAll((els) =>
        els.map((e) => ({ round: e.getAttribute("data-round"), eps: e.getAttribute("data-epsilon") })),
      );
    const pub = await ledger(DP);
    expect(pub.rounds).toHaveLength(Z_STEPS.length);
    const own = new PrivacyLedger({ population: DP, accountant: pub.accountant });
    const expected = pub.rounds.map((r) => {
      own.record({
        roundId: r.round_id,
        sampleRate: r.sampling_rate,
        noiseMultiplier: r.noise_multiplier,
        mode: r.privacy_mode as "central",
        openedAt: r.charged_at,
      });
      return { round: r.round_id, eps: own.spent(pub.delta!) };
    });
    expect(points.map((p) => p.round)).toEqual(expected.map((e) => e.round));
    points.forEach((p, i) => expect(Number(p.eps)).toBeCloseTo(expected[i]!.eps, 9));
    expect(Number(points.at(-1)!.eps)).toBeCloseTo(pub.epsilon_spent!, 9);
    // ε grows with every round.
    for (let i = 1; i < points.length; i++) expect(Number(points[i]!.eps)).toBeGreaterThan(Number(points[i - 1]!.eps));
    // The budget line is the ledger's budget.
    const budget = await page.locator(`svg.epsilon-chart[data-population="${DP}"]`).getAttribute("data-budget");
    expect(Number(budget)).toBe(pub.budget!.epsilon);
    await page.close();
  });

  it("never shows the exact device counts of a DP population, on any page", async () => {
    const page = await context.newPage();
    const hidden = String(DP_DEVICES);
    for (const p of PAGES) {
      await page.goto(edge.url + p.path);
      expect(await numbersOn(page), p.path).not.toContain(hidden);
    }
    // The rounds page shows the counts of the round without DP (so the check above would see a leaked count)…
    await page.goto(`${edge.url}/dashboard/rounds`);
    expect(await numbersOn(page)).toContain(String(PLAIN_DEVICES));
    expect(await page.locator(`section[data-population="${PLAIN}"] tr.round`).first().textContent()).toContain(
      `${PLAIN_DEVICES} checked in`,
    );
    // …and for DP rounds, none, but C and z.
    const dpRows = await page.locator(`section[data-population="${DP}"] tr.round`).all();
    expect(dpRows).toHaveLength(Z_STEPS.length);
    const newestFirst = [...Z_STEPS].reverse();
    for (const [i, row] of dpRows.entries()) {
      const cells = await row.locator("td").allTextContents();
      expect(cells.at(-1)).toContain("not released");
      expect(cells[4]).toBe("0.75"); // C
      expect(Number(cells[5])).toBe(newestFirst[i]); // z
    }

    // The adaptive round shows what its aggregator released: the noised count (labelled, with σ_b) and the next C …
    const section = `section[data-population="${ADAPT}"]`;
    const [round] = await page.locator(`${section} tr.round`).all();
    const release = (await operator.roundStatus(adapted.roundId)).release!;
    const u = release.unclipped!;
    const noised = round!.locator(".noised");
    expect(Number(await noised.getAttribute("data-noised-count"))).toBe(u.noised_count);
    expect(Number(await noised.getAttribute("data-noise-std"))).toBe(ADAPT_SIGMA_B);
    const text = (await noised.textContent())!.replace(/\s+/g, " ");
    expect(text).toContain(`unclipped ≈ ${u.noised_count.toFixed(1)}`);
    expect(text).toContain(`noised, σ_b = ${ADAPT_SIGMA_B}`);
    expect(text).toContain(`of m = ${ADAPT_EXPECTED}`);
    const cells = await round!.locator("td").allTextContents();
    expect(cells[4]).toContain(`→ ${Number(adapted.nextClipNorm!.toPrecision(4))}`);
    expect(cells[5]).toMatch(/^1 \(adaptive C\)$/); // z
    // … and, besides that released value (which may fall on any number, an exact count included: it is noised, not a
    // count), neither the round's exact counts (5 checked in, selected, accepted) nor its exact unclipped count.
    const shown = await numbersOn(page, section, ".noised");
    expect(shown).not.toContain(String(ADAPT_NORMS.length));
    expect(shown).not.toContain(String(adapted.unclippedCount));
    await page.close();
  });

  it("rolls back and promotes from the buttons; a POST without the CSRF token or from another site changes nothing", async () => {
    const serving = async () =>
      ((await (await fetch(`${edge.url}/v1/models/${DP}`)).json()) as { serving_version: number }).serving_version;
    const page = await context.newPage();
    await page.goto(`${edge.url}/dashboard/models`);
    const section = page.locator(`section[data-model="${DP}"]`);
    expect(await section.getAttribute("data-serving")).toBe("2");

    // Forged requests with the operator's own session cookie.
    const [cookie] = await context.cookies();
    const forged = async (body: string, origin: string) =>
      fetch(`${edge.url}/dashboard/models/${DP}/rollback`, {
        method: "POST",
        redirect: "manual",
        headers: {
          cookie: `${cookie!.name}=${cookie!.value}`,
          "content-type": "application/x-www-form-urlencoded",
          origin,
        },
        body,
      });
    expect((await forged("", edge.url)).status).toBe(403);
    expect((await forged("_csrf=AAAA", edge.url)).status).toBe(403);
    const csrf = await page.locator('input[name="_csrf"]').first().getAttribute("value");
    expect((await forged(`_csrf=${csrf}`, "https://evil.example")).status).toBe(403);
    expect(await serving()).toBe(2);

    await Promise.all([page.waitForNavigation(), section.locator("button.rollback").click()]);
    expect(new URL(page.url()).pathname).toBe("/dashboard/models");
    expect(await page.locator(`section[data-model="${DP}"]`).getAttribute("data-serving")).toBe("1");
    expect(await serving()).toBe(1);
    await shot(page, "models-after-rollback");

    await Promise.all([
      page.waitForNavigation(),
      page.locator(`section[data-model="${DP}"] tr[data-version="2"] button.promote`).click(),
    ]);
    expect(await page.locator(`section[data-model="${DP}"]`).getAttribute("data-serving")).toBe("2");
    expect(await serving()).toBe(2);
    await page.close();
  });

  it("revokes a device from its page; its next check-in is refused", async () => {
    const page = await context.newPage();
    await page.goto(`${edge.url}/dashboard/devices`);
    expect(Number(await page.textContent("#devices-total"))).toBe(DP_DEVICES + PLAIN_DEVICES + ADAPT_NORMS.length);
    const victim = dpDevices[0]!;
    const id = (await victim.register()).deviceId;
    await page.fill('input[name="device"]', id);
    await Promise.all([page.waitForNavigation(), page.click("#find-device")]);
    expect(await page.textContent("#device-status")).toContain("active");
    await Promise.all([page.waitForNavigation(), page.click("#revoke-device")]);
    expect(await page.textContent("#device-status")).toContain("revoked");
    await shot(page, "devices-revoked");
    const err = await victim.checkin(DP).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FedgeAPIError);
    expect((err as FedgeAPIError).code).toBe("device_revoked");
    // Another device of the same key still checks in.
    expect((await dpDevices[1]!.checkin(DP)).receipt).toBeDefined();
    await page.close();
  });

  it("logs out: the old session cookie is refused from then on", async () => {
    const page = await context.newPage();
    await page.goto(`${edge.url}/dashboard`);
    const [cookie] = await context.cookies();
    await Promise.all([page.waitForNavigation(), page.click("#logout")]);
    expect(await page.textContent("main")).toContain("Logged out");
    expect(await context.cookies()).toEqual([]);
    const replay = await fetch(`${edge.url}/dashboard`, {
      redirect: "manual",
      headers: { cookie: `${cookie!.name}=${cookie!.value}` },
    });
    expect(replay.status).toBe(303);
    expect(replay.headers.get("location")).toBe("/dashboard/login");
    await page.close();
  });
});
