/**
 * The demo fleet's second chance for queued uploads (`Fleet.retryPending`), against the real local edge (`wrangler dev`
 * on port 8824): one device's upload reaches the edge but its answer is lost, another's never leaves the device; both
 * come back `queued` from `participate()`, and the fleet's queue flush before the round closes gets them accepted:
 * the lost one as a duplicate of what the edge already stored, so the edge counts every device exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toBase64Url } from "@fedge/protocol";
import { createBackend } from "@fedge/gpu-node";
import { exportModel } from "fedge";
import { loadMnist } from "fedge/data";
import { EdgeAdminClient } from "fedge/edge";
import { Fleet } from "@fedge/demo";
import type { LocalEdge } from "@fedge/local-edge";
import { startTestEdge, type TestEdge } from "./helpers/test-edge.ts";
import { zeroMnistRegression } from "./helpers/zero-model.ts";

const PORT = 8824;
const DEVICES = 6;
const MODEL = "fleet-retry";
const ADMIN_TOKEN = `fr_${toBase64Url(crypto.getRandomValues(new Uint8Array(24)))}`;

let testEdge: TestEdge;
let edge: LocalEdge;
let operator: EdgeAdminClient;

beforeAll(async () => {
  testEdge = await startTestEdge({ port: PORT, name: "fleet-retry", adminToken: ADMIN_TOKEN });
  const { key } = testEdge;
  ({ edge, operator } = testEdge);
  const backend = await createBackend({ prefer: "cpu", log: () => undefined });
  try {
    const e = await exportModel({ model: zeroMnistRegression(), name: MODEL, version: 1, backend, signingKey: key });
    await operator.uploadModelVersion(e.manifest, e.onnx, true);
  } finally {
    await backend.dispose();
  }
}, 180_000);

afterAll(async () => {
  await testEdge?.stop();
});

describe("demo fleet: queued uploads get a second chance before the round closes", () => {
  it("accepts a lost-answer upload (as a duplicate) and an offline one, each counted once by the edge", async () => {
    const apiKey = (await operator.createApiKey("fleet retry", 1_000_000)).key;
    const { train } = loadMnist();
    const per = 40;
    const shards = Array.from({ length: DEVICES }, (_, i) => ({
      x: train.x.slice(i * per * 784, (i + 1) * per * 784),
      y: train.y.slice(i * per, (i + 1) * per),
    }));
    const sent = { lost: 0, offline: 0 };
    const isUpload = (input: Parameters<typeof fetch>[0]) => String(input).endsWith("/updates");
    // Device 0: its first upload is stored by the edge, but the answer never arrives.
    const lostAnswer: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (isUpload(input) && sent.lost++ === 0) {
        await res.arrayBuffer();
        throw new TypeError("fetch failed: connection reset");
      }
      return res;
    };
    // Device 1: its first upload never leaves the device.
    const offlineOnce: typeof fetch = async (input, init) => {
      if (isUpload(input) && sent.offline++ === 0) throw new TypeError("fetch failed: network is unreachable");
      return fetch(input, init);
    };
    const fleet = new Fleet({
      baseUrl: edge.url,
      apiKey,
      shards,
      concurrency: 3,
      // no retries inside participate(): the first failure leaves the update queued
      maxRetries: 0,
      fetchFor: (i) => (i === 0 ? lostAnswer : i === 1 ? offlineOnce : undefined),
    });
    await fleet.register();
    await operator.setPrivacyBudget(MODEL, { epsilon: 100, delta: 1e-5 });
    const round = await operator.openRound({
      model: MODEL,
      model_version: 1,
      clip_norm: 1,
      learning_rate: 0.1,
      local_epochs: 1,
      batch_size: 16,
      privacy_mode: "central",
      // what the devices' default privacy policy needs to see before they take part
      population_privacy: { epsilon: 1, planned_epsilon: 4, delta: 1e-5 },
      trainable: "all",
      update_length: 7850,
      update_dtype: "float32",
      sampling_rate: 1,
      min_reports: 1,
      mechanism: { noise_multiplier: 1, clip_rule: "fixed" },
      duration_s: 120,
    });

    const r = await fleet.runRound(MODEL);
    expect(r.errors).toEqual({});
    expect(r).toMatchObject({ checkedIn: DEVICES, selected: DEVICES, honestAccepted: DEVICES, retried: 2, queued: 0 });
    expect(sent).toEqual({ lost: 2, offline: 2 });
    for (const d of fleet.devices) expect(await d.client.queue.list()).toEqual([]);

    const status = await operator.roundStatus(round.round_id);
    expect(status.accepted).toBe(DEVICES);
    // Listing waits for the round to close.
    await expect(operator.listUpdates(round.round_id)).rejects.toMatchObject({ status: 409 });
    const closed = await operator.closeRound(round.round_id);
    expect(closed.accepted).toBe(DEVICES);
    const listed = await operator.listUpdates(round.round_id);
    expect(new Set(listed.items.map((u) => u.device_id)).size).toBe(DEVICES);
  });
});
