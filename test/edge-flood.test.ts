/**
 * Issue 17, item 7: an unauthenticated flood against the real local edge (`wrangler dev` started by the shared
 * `startTestEdge`, loopback only, fresh state): a bounded number of anonymous and forged requests of every kind
 * (uploads to made-up rounds, made-up and guessed API keys, forged aggregator signatures with chunked bodies,
 * registrations and check-ins without a key). Oracles: no 5xx; afterwards no Durable Object on disk holds a table it
 * did not hold before (objects the flood only addressed hold none), so the flood cost the edge no storage; the client
 * address is answered 429 once it has used up its failed credentials; and the edge still serves the real key
 * afterwards.
 */
import { readdir } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import { toBase64Url } from "@fedge/protocol";
import type { LocalEdge } from "@fedge/local-edge";
import { startTestEdge, type TestEdge } from "./helpers/test-edge.ts";

const PORT = 8840;
const FLOOD = 400;
const CONCURRENCY = 16;
const ADMIN_TOKEN = `fa_${toBase64Url(crypto.getRandomValues(new Uint8Array(24)))}`;

let testEdge: TestEdge;
let edge: LocalEdge;
let apiKey: string;

beforeAll(async () => {
  testEdge = await startTestEdge({ port: PORT, name: "flood", adminToken: ADMIN_TOKEN });
  edge = testEdge.edge;
  // Loopback only: this test floods the edge it started, never anything else.
  expect(new URL(edge.url).hostname).toBe("127.0.0.1");
  apiKey = (await testEdge.operator.createApiKey("flood test")).key;
  const device = await fetch(`${edge.url}/v1/devices`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ public_key: toBase64Url(nacl.sign.keyPair().publicKey) }),
  });
  expect(device.status).toBe(201);
}, 180_000);

afterAll(async () => {
  await testEdge?.stop();
});

/** Every Durable Object SQLite file under the edge's state directory, with its user tables. */
async function durableObjectTables(): Promise<Map<string, string[]>> {
  const root = path.join(testEdge.dir, "edge-state");
  const out = new Map<string, string[]>();
  const files = (await readdir(root, { recursive: true })).filter((f) => f.endsWith(".sqlite") && f.includes("do"));
  for (const f of files) {
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path.join(root, f), { readOnly: true });
      const rows = db
        .prepare(
          // workerd's (_cf_*) and miniflare's (__miniflare_*, the object's name) bookkeeping are not the edge's storage.
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE '\\_\\_miniflare%' ESCAPE '\\' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .all() as { name: string }[];
      out.set(
        f,
        rows.map((r) => r.name),
      );
    } catch {
      out.set(f, []); // an object created a moment ago, not yet a database
    } finally {
      db?.close();
    }
  }
  return out;
}

const rand = (n: number) => toBase64Url(crypto.getRandomValues(new Uint8Array(n)));
const lower = (n: number) =>
  Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => (b % 36).toString(36)).join("");

/** One flood request of kind `i % 8`. */
function floodRequest(i: number): [string, RequestInit] {
  const url = edge.url;
  switch (i % 8) {
    case 0: // an upload to a made-up round, no key
      return [
        `${url}/v1/rounds/${lower(10)}_1/updates`,
        {
          method: "POST",
          headers: { "content-type": "application/vnd.fedge.update" },
          body: crypto.getRandomValues(new Uint8Array(256)),
        },
      ];
    case 1: // an upload with a made-up key
      return [
        `${url}/v1/rounds/${lower(10)}_1/updates`,
        {
          method: "POST",
          headers: {
            "content-type": "application/vnd.fedge.update",
            authorization: `Bearer fk_${lower(12)}_${rand(32)}`,
          },
          body: crypto.getRandomValues(new Uint8Array(256)),
        },
      ];
    case 2: // a guessed secret for the real key id
      return [
        `${url}/v1/usage`,
        { headers: { authorization: `Bearer ${apiKey.slice(0, apiKey.lastIndexOf("_"))}_${rand(32)}` } },
      ];
    case 3: // a check-in with a made-up key and device
      return [
        `${url}/v1/rounds/checkin`,
        {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer fk_${lower(12)}_${rand(32)}` },
          body: JSON.stringify({
            model: lower(8),
            device_id: `dev_${rand(16)}`,
            timestamp: new Date().toISOString(),
            signature: rand(64),
          }),
        },
      ];
    case 4: {
      // a forged aggregator signature with a chunked body of 4 MiB
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent >= 4 * 1024 * 1024) return c.close();
          sent += 65536;
          c.enqueue(new Uint8Array(65536));
        },
      });
      return [
        `${url}/v1/admin/rounds`,
        {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-fedge-aggregator-key": rand(32),
            "x-fedge-timestamp": new Date().toISOString(),
            "x-fedge-nonce": rand(16),
            "x-fedge-signature": rand(64),
          },
          body,
          duplex: "half",
        } as RequestInit,
      ];
    }
    case 5: // a registration without a key
      return [
        `${url}/v1/devices`,
        {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ public_key: rand(32) }),
        },
      ];
    case 6: // a made-up admin token
      return [`${url}/v1/admin/device-quotas/${lower(10)}`, { headers: { authorization: `Bearer fa_${rand(24)}` } }];
    default: // a made-up model
      return [`${url}/v1/models/${lower(12)}`, {}];
  }
}

describe("an unauthenticated flood (loopback, bounded)", () => {
  it("gets 4xx only, costs the edge no Durable Object storage, and leaves it serving", async () => {
    const before = await durableObjectTables();
    const statuses = new Map<number, number>();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < FLOOD) {
          const [url, init] = floodRequest(next++);
          const res = await fetch(url, init);
          await res.arrayBuffer();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        }
      }),
    );
    const summary = Object.fromEntries([...statuses].sort(([a], [b]) => a - b));
    console.log(`flood of ${FLOOD}: statuses ${JSON.stringify(summary)}`);
    expect(
      [...statuses.keys()].every((s) => s >= 400 && s < 500),
      JSON.stringify(summary),
    ).toBe(true);
    // The loopback address used up its failed credentials: the rest were answered before any lookup.
    expect(statuses.get(429) ?? 0, JSON.stringify(summary)).toBeGreaterThan(0);

    const after = await durableObjectTables();
    for (const [file, tables] of after) {
      expect(tables, `${file} (new: ${!before.has(file)})`).toEqual(before.get(file) ?? []);
    }

    // Still serving: health at once, the real key once the address has a token again (at most a few seconds).
    expect((await fetch(`${edge.url}/v1/health`)).status).toBe(200);
    let status = 0;
    for (let i = 0; i < 20 && status !== 200; i++) {
      status = (await fetch(`${edge.url}/v1/usage`, { headers: { authorization: `Bearer ${apiKey}` } })).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 500));
    }
    expect(status).toBe(200);
  });
});
