/**
 * Issue 17, item 7: property-based HTTP fuzzing of every route, driven by the edge's own `/openapi.json` (fast-check),
 * and a chunked body of more than any cap on every route.
 *
 * Oracles, for every request: never a 5xx; every error is the JSON envelope `{"error":{"code","message"}}` (on the Open
 * Inference Protocol's `/v2` paths its form `{"error": message, "code"}`) and nothing else, with no stack trace or
 * source path in it; a 4xx changes no state (R2, KV, the fixture population's coordinator,
 * and no Durable Object it touched keeps tables); without a credential nothing but the public reads succeeds and the
 * whole anonymous phase leaves the state as it found it; a chunked body is read no further than the route's cap; and
 * the edge still serves a full check-in afterwards. Bounded: a fixed number of runs per route.
 */
import { env, listDurableObjectIds, runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import nacl from "tweetnacl";
import { MAX_INFER_BODY_BYTES, MAX_MODEL_BYTES, toBase64Url } from "@fedge/protocol";
import {
  ADMIN,
  call,
  checkin,
  coordinatorState,
  createApiKey,
  makeUpdate,
  openRound,
  registerDevice,
  taskFor,
  uniqueModel,
  type TestDevice,
} from "./rounds-helpers.ts";

interface Param {
  in: "path" | "query";
  name: string;
  required?: boolean;
  schema?: { pattern?: string; type?: string | string[]; maximum?: number };
}
interface Operation {
  method: string;
  path: string;
  params: Param[];
  bodyTypes: string[];
  /** Needs no credential (public reads). */
  open: boolean;
  /** Takes the admin token (else an API key). */
  admin: boolean;
}

let ops: Operation[];
let fixture: {
  model: string;
  roundId: string;
  device: TestDevice;
  key: { id: string; key: string };
  update: Uint8Array;
};

beforeAll(async () => {
  const doc = await (
    await call("/openapi.json")
  ).json<{
    paths: Record<
      string,
      Record<string, { parameters?: Param[]; requestBody?: { content: object }; security?: object[] }>
    >;
  }>();
  ops = Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => ({
      method: method.toUpperCase(),
      path,
      params: op.parameters ?? [],
      bodyTypes: Object.keys(op.requestBody?.content ?? {}),
      open: !op.security || op.security.length === 0,
      admin: (op.security ?? []).some((s) => "adminToken" in s),
    })),
  );
  ops.push({ method: "GET", path: "/openapi.json", params: [], bodyTypes: [], open: true, admin: false });
  ops.push({ method: "GET", path: "/docs", params: [], bodyTypes: [], open: true, admin: false });
  expect(ops.length).toBeGreaterThan(30);
  const model = uniqueModel("fuzz");
  const key = await createApiKey();
  const device = await registerDevice(key.key);
  const round = await openRound(model);
  const task = await taskFor(device, model);
  fixture = { model, roundId: round.round_id, device, key, update: await makeUpdate(task, device) };
});

// ── generators ─────────────────────────────────────────────────────────────────────────────────────────────────────

const printable = (max: number) => fc.stringMatching(new RegExp(`^[\\x21-\\x7e]{0,${max}}$`));

function segment(op: Operation, p: Param): fc.Arbitrary<string> {
  const known: string[] = [];
  if (p.name === "name") known.push(fixture.model, "mnist-mlp");
  if (p.name === "id" && op.path.includes("/rounds/")) known.push(fixture.roundId, `${fixture.model}_2`);
  if (p.name === "id" && op.path.includes("/devices/")) known.push(fixture.device.id);
  if (p.name === "id" || p.name === "key_id") known.push(fixture.key.id);
  if (p.name === "device_id") known.push(fixture.device.id);
  if (p.name === "version") known.push("1", "0", "-1", "1e9", "NaN");
  if (p.name === "public_key") known.push(toBase64Url(nacl.sign.keyPair().publicKey));
  const arbs: fc.Arbitrary<string>[] = [
    fc.string({ maxLength: 40 }),
    fc.constantFrom("..", "%00", "a".repeat(300), "x_1"),
  ];
  if (known.length > 0) arbs.push(fc.constantFrom(...known));
  if (p.schema?.pattern) arbs.push(fc.stringMatching(new RegExp(p.schema.pattern)));
  return fc.oneof(...arbs);
}

function queryValue(p: Param): fc.Arbitrary<string> {
  const arbs: fc.Arbitrary<string>[] = [fc.string({ maxLength: 30 }), fc.integer().map(String), fc.constant("")];
  if (p.schema?.pattern) arbs.push(fc.stringMatching(new RegExp(p.schema.pattern)));
  if (p.name === "model") arbs.push(fc.constant(fixture.model));
  return fc.oneof(...arbs);
}

interface Body {
  type: string | null;
  bytes: Uint8Array | FormData;
}

function body(op: Operation): fc.Arbitrary<Body | null> {
  const json = fc.jsonValue({ maxDepth: 3 }).map((v) => new TextEncoder().encode(JSON.stringify(v)));
  const bytes = fc.uint8Array({ maxLength: 512 });
  const types = fc.constantFrom(...op.bodyTypes, "text/plain", "application/json");
  const arbs: fc.Arbitrary<Body | null>[] = [
    fc.constant(null),
    fc.record({ type: types, bytes: fc.oneof(json, bytes) }),
    fc.record({ type: fc.constant(null), bytes }),
  ];
  if (op.bodyTypes.includes("application/vnd.fedge.update")) {
    // A real update with a few bytes flipped (signature, header, payload).
    const flipped = fc
      .array(fc.tuple(fc.nat(fixture.update.length - 1), fc.integer({ min: 1, max: 255 })), { maxLength: 3 })
      .map((flips) => {
        const b = fixture.update.slice();
        for (const [i, x] of flips) b[i]! ^= x;
        return b;
      });
    arbs.push(fc.record({ type: fc.constant("application/vnd.fedge.update"), bytes: flipped }));
  }
  if (op.bodyTypes.includes("multipart/form-data")) {
    const form = fc
      .record({
        model: bytes,
        manifest: fc.oneof(
          fc.string({ maxLength: 60 }),
          json.map((b) => new TextDecoder().decode(b)),
        ),
      })
      .map(({ model, manifest }) => {
        const f = new FormData();
        f.set("model", new File([model], "model.onnx"));
        f.set("manifest", manifest);
        return f;
      });
    arbs.push(fc.record({ type: fc.constant(null), bytes: form }));
  }
  return fc.oneof(...arbs);
}

interface Req {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Body | null;
}

function request(op: Operation, auth: fc.Arbitrary<Record<string, string>>): fc.Arbitrary<Req> {
  const pathParams = op.params.filter((p) => p.in === "path");
  const queryParams = op.params.filter((p) => p.in === "query");
  return fc
    .record({
      segments: fc.tuple(...pathParams.map((p) => segment(op, p))),
      query: fc.tuple(...queryParams.map((p) => fc.option(queryValue(p), { nil: undefined }))),
      headers: auth,
      body: op.method === "GET" ? fc.constant(null) : body(op),
    })
    .map(({ segments, query, headers, body }) => {
      let path = op.path;
      pathParams.forEach((p, i) => (path = path.replace(`{${p.name}}`, encodeURIComponent(segments[i]!))));
      const q = new URLSearchParams();
      queryParams.forEach((p, i) => query[i] !== undefined && q.set(p.name, query[i]!));
      const qs = q.toString();
      return { method: op.method, path: qs ? `${path}?${qs}` : path, headers, body };
    });
}

const anonymous: fc.Arbitrary<Record<string, string>> = fc.oneof(
  fc.constant({}),
  printable(80).map((s) => ({ authorization: `Bearer ${s}` })),
  fc
    .tuple(fc.stringMatching(/^[a-z0-9]{1,32}$/), fc.stringMatching(/^[A-Za-z0-9_-]{16,64}$/))
    .map(([id, secret]) => ({ authorization: `Bearer fk_${id}_${secret}` })),
  fc
    .stringMatching(/^[A-Za-z0-9_-]{43}$/)
    .map((secret) => ({ authorization: `Bearer fk_${fixture.key.id}_${secret}` })),
  fc
    .tuple(fc.stringMatching(/^[A-Za-z0-9_-]{43}$/), fc.stringMatching(/^[A-Za-z0-9_-]{86}$/), printable(30))
    .map(([key, sig, ts]) => ({
      "x-fedge-aggregator-key": key,
      "x-fedge-signature": sig,
      "x-fedge-timestamp": fc.sample(fc.constantFrom(new Date().toISOString(), ts), 1)[0]!,
      "x-fedge-nonce": "A".repeat(22),
    })),
);

async function send(req: Req): Promise<Response> {
  const headers = { ...req.headers };
  let payload: BodyInit | undefined;
  if (req.body) {
    if (req.body.type) headers["content-type"] = req.body.type;
    payload = req.body.bytes as BodyInit;
  }
  return call(req.path, { method: req.method, headers, ...(payload !== undefined ? { body: payload } : {}) });
}

// ── oracles ────────────────────────────────────────────────────────────────────────────────────────────────────────

const STACK = /\n\s+at |\.ts:\d+|\.js:\d+|node_modules|file:\/\/|workerd/;

async function checkResponse(req: Req, res: Response): Promise<void> {
  const what = `${req.method} ${req.path} → ${res.status}`;
  const text = await res.text();
  expect(res.status, `${what}: ${text.slice(0, 300)}`).toBeLessThan(500);
  expect(STACK.test(text), `${what}: a stack trace or source path in ${text.slice(0, 300)}`).toBe(false);
  if (res.status >= 400) {
    expect(res.headers.get("content-type") ?? "", what).toMatch(/^application\/json/);
    if (/^\/v2(\/|\?|$)/.test(req.path)) {
      const v2 = JSON.parse(text) as { error?: unknown; code?: unknown };
      expect(Object.keys(v2).sort(), what).toEqual(["code", "error"]);
      expect(v2.code, what).toMatch(/^[a-z][a-z_]*$/);
      expect(typeof v2.error, what).toBe("string");
      return;
    }
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    expect(Object.keys(parsed), what).toEqual(["error"]);
    expect(Object.keys(parsed.error!).sort(), what).toEqual(["code", "message"]);
    expect(parsed.error!.code, what).toMatch(/^[a-z][a-z_]*$/);
    expect(typeof parsed.error!.message, what).toBe("string");
  }
}

const NAMESPACES = ["ROUNDS", "ACCOUNTS", "DEVICES", "UPDATE_STORE", "ADMIN_NONCES"] as const;

async function userTables(ns: DurableObjectNamespace<never>, id: DurableObjectId): Promise<number> {
  return runInDurableObject(
    ns.get(id),
    (_i, state) =>
      state.storage.sql
        .exec(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'sqlite_%'",
        )
        .toArray().length,
  );
}

async function bucketKeys(bucket: R2Bucket): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ ...(cursor ? { cursor } : {}) });
    keys.push(...page.objects.map((o) => `${o.key}:${o.etag}`));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return keys.sort();
}

/** What a refused request must leave as it was. */
async function snapshot() {
  const objects: Record<string, string[]> = {};
  for (const ns of NAMESPACES)
    objects[ns] = (await listDurableObjectIds(env[ns] as DurableObjectNamespace<never>))
      .map((id) => id.toString())
      .sort();
  return {
    models: await bucketKeys(env.MODELS),
    updates: await bucketKeys(env.UPDATES),
    kv: (await env.REGISTRY.list()).keys.map((k) => k.name).sort(),
    coordinator: await coordinatorState(fixture.model),
    objects,
  };
}

type Snapshot = Awaited<ReturnType<typeof snapshot>>;

/** Equal state, except objects that were only addressed (they must hold no tables). */
async function expectUnchanged(before: Snapshot, after: Snapshot, what: string): Promise<void> {
  const { objects: a, ...restBefore } = before;
  const { objects: b, ...restAfter } = after;
  expect(restAfter, what).toEqual(restBefore);
  for (const ns of NAMESPACES) {
    const known = new Set(a[ns]);
    for (const id of b[ns]!.filter((x) => !known.has(x))) {
      expect(
        await userTables(env[ns] as DurableObjectNamespace<never>, env[ns].idFromString(id)),
        `${what}: new ${ns} object ${id} has tables`,
      ).toBe(0);
    }
  }
}

// ── properties ─────────────────────────────────────────────────────────────────────────────────────────────────────

describe("fuzzing every route from /openapi.json", () => {
  it("anonymous: no 5xx, the envelope, only public reads succeed, and the state is left as it was", async () => {
    const before = await snapshot();
    for (const op of ops) {
      await fc.assert(
        fc.asyncProperty(request(op, anonymous), async (req) => {
          const res = await send(req);
          if (!op.open) expect(res.status, `${req.method} ${req.path}`).toBeGreaterThanOrEqual(400);
          await checkResponse(req, res);
        }),
        { numRuns: 16 },
      );
    }
    await expectUnchanged(before, await snapshot(), "after the anonymous phase");
  });

  it("with credentials: no 5xx, the envelope, and a 4xx changes nothing", async () => {
    const adminAuth = fc.constant(ADMIN as Record<string, string>);
    const keyAuth = fc.constant({ authorization: `Bearer ${fixture.key.key}` } as Record<string, string>);
    for (const op of ops) {
      await fc.assert(
        fc.asyncProperty(request(op, op.admin ? adminAuth : keyAuth), async (req) => {
          const before = await snapshot();
          const res = await send(req);
          const status = res.status;
          await checkResponse(req, res);
          if (status >= 400) await expectUnchanged(before, await snapshot(), `${req.method} ${req.path} → ${status}`);
        }),
        { numRuns: 8 },
      );
    }
  });

  it("a chunked body larger than every cap is read no further than the route's cap, on every route", async () => {
    const MiB = 1024 * 1024;
    const caps: Record<string, number> = {
      "/v1/admin/models/{name}/versions": MAX_MODEL_BYTES + 256 * 1024,
      "/v2/models/{name}/infer": MAX_INFER_BODY_BYTES,
      "/v2/models/{name}/versions/{version}/infer": MAX_INFER_BODY_BYTES,
      "/v1/models/{name}/predict": 2 * MiB,
      "/v1/rounds/{id}/updates": 16 * MiB,
    };
    for (const op of ops.filter((o) => o.method !== "GET")) {
      let pulled = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (pulled >= 17 * MiB) return controller.close();
          pulled += 64 * 1024;
          controller.enqueue(new Uint8Array(64 * 1024).fill(0x7b));
        },
      });
      const path = op.path
        .replace("{name}", fixture.model)
        .replace(
          "{id}",
          op.path.includes("/rounds/")
            ? fixture.roundId
            : op.path.includes("/devices/")
              ? fixture.device.id
              : fixture.key.id,
        )
        .replace(/\{[a-z_]+\}/g, (p) =>
          p === "{public_key}" ? "A".repeat(43) : p === "{device_id}" ? fixture.device.id : "1",
        );
      const contentType = op.bodyTypes[0] ?? "application/json";
      const res = await call(path, {
        method: op.method,
        headers: {
          ...(op.admin ? ADMIN : { authorization: `Bearer ${fixture.key.key}` }),
          "content-type": contentType === "multipart/form-data" ? "multipart/form-data; boundary=x" : contentType,
        },
        body: stream,
      });
      const req: Req = { method: op.method, path, headers: {}, body: null };
      await checkResponse(req, res);
      const cap = caps[op.path] ?? 64 * 1024;
      expect(pulled, `${op.method} ${op.path} read ${pulled} bytes (cap ${cap})`).toBeLessThanOrEqual(cap + 256 * 1024);
    }
  });

  it("the edge still answers afterwards: health, and a fresh key checks a new device in", async () => {
    expect((await call("/v1/health")).status).toBe(200);
    const model = uniqueModel("after");
    await openRound(model);
    const device = await registerDevice((await createApiKey()).key);
    expect((await checkin(device, model)).selected).toBe(true);
  });
});
