/**
 * The transport against a real HTTP peer on loopback (node:http): real sockets, real fetch, real timeouts. Retry-After
 * values are kept at zero or milliseconds so the suite stays fast; backoff timing itself is tested purely in retry.test.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIUserAbortError,
  BadRequestError,
  ConflictError,
  InternalServerError,
  RateLimitError,
} from "../core/errors.ts";
import { cryptoRandom } from "./platform.ts";
import { Transport } from "./transport.ts";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
}
type Responder = (req: Seen, res: ServerResponse) => void;

let server: Server;
let baseUrl: string;
let script: Responder[] = [];
let seen: Seen[] = [];

const json =
  (status: number, body: unknown, headers: Record<string, string> = {}): Responder =>
  (_q, res) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
const err = (status: number, code: string, headers: Record<string, string> = {}) =>
  json(status, { error: { code, message: `${code} happened` } }, { "x-request-id": `rid-${status}`, ...headers });

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
      seen.push(s);
      const next = script.shift() ?? json(200, { ok: true });
      next(s, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  script = [];
  seen = [];
});

const transport = (over: Partial<ConstructorParameters<typeof Transport>[0]> = {}) =>
  new Transport({
    baseUrl,
    apiKey: "fk_test_secret",
    fetch,
    maxRetries: 2,
    timeoutMs: 5000,
    random: cryptoRandom,
    ...over,
  });

describe("Transport", () => {
  it("sends the bearer key and JSON, and parses the answer", async () => {
    script = [json(200, { outputs: [[1, 2]] })];
    const out = await transport().json<{ outputs: number[][] }>({ method: "POST", path: "/v1/x", json: { a: 1 } });
    expect(out.outputs).toEqual([[1, 2]]);
    expect(seen[0]!.headers.authorization).toBe("Bearer fk_test_secret");
    expect(seen[0]!.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(seen[0]!.body.toString())).toEqual({ a: 1 });
  });

  it("retries 5xx and resends exactly the same bytes", async () => {
    script = [
      err(503, "internal", { "retry-after-ms": "1" }),
      err(500, "internal", { "retry-after-ms": "1" }),
      json(200, { sha256: "ok" }),
    ];
    const body = new Uint8Array([0x46, 0x45, 0x44, 0x55, 1, 2, 3, 250]);
    const out = await transport().json<{ sha256: string }>({
      method: "POST",
      path: "/v1/rounds/r_1/updates",
      body,
      contentType: "application/vnd.fedge.update",
    });
    expect(out.sha256).toBe("ok");
    expect(seen).toHaveLength(3);
    for (const s of seen) {
      expect([...s.body]).toEqual([...body]);
      expect(s.headers["content-type"]).toBe("application/vnd.fedge.update");
    }
  });

  it("never retries other 4xx; the error carries code, status and request id", async () => {
    for (const [status, cls, code] of [
      [400, BadRequestError, "validation_failed"],
      [409, ConflictError, "nonce_used"],
    ] as const) {
      seen = [];
      script = [err(status, code)];
      const e = await transport()
        .request({ method: "POST", path: "/v1/x", json: {} })
        .catch((x: unknown) => x);
      expect(e).toBeInstanceOf(cls);
      expect(e).toMatchObject({ status, code, requestId: `rid-${status}`, message: `${code} happened` });
      expect(seen).toHaveLength(1);
    }
  });

  it("honours 429 Retry-After and gives up on a long one", async () => {
    script = [err(429, "rate_limited", { "retry-after": "0" }), json(200, { ok: 1 })];
    await expect(transport().json({ method: "GET", path: "/v1/x" })).resolves.toEqual({ ok: 1 });
    expect(seen).toHaveLength(2);

    seen = [];
    script = [err(429, "rate_limited", { "retry-after": "3600" })];
    const e = await transport()
      .request({ method: "GET", path: "/v1/x" })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RateLimitError);
    expect((e as RateLimitError).retryAfterMs).toBe(3_600_000);
    expect(seen).toHaveLength(1);
  });

  it("stops after maxRetries with the last 5xx", async () => {
    script = [0, 1, 2, 3].map(() => err(502, "internal", { "retry-after-ms": "1" }));
    const e = await transport({ maxRetries: 1 })
      .request({ method: "GET", path: "/v1/x" })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InternalServerError);
    expect(seen).toHaveLength(2);
  });

  it("times out a slow attempt, retries it, then reports a timeout", async () => {
    const slow: Responder = (_q, res) => {
      setTimeout(() => json(200, { late: true })(_q, res), 1000);
    };
    script = [slow, slow];
    const e = await transport({ timeoutMs: 100, maxRetries: 1, random: (b) => b.fill(255) })
      .request({ method: "GET", path: "/v1/slow" })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(APIConnectionTimeoutError);
    expect(seen).toHaveLength(2);
  });

  it("a user abort is not retried", async () => {
    script = [(_q, res) => setTimeout(() => json(200, {})(_q, res), 2000)];
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const e = await transport()
      .request({ method: "GET", path: "/v1/slow" }, { signal: ac.signal })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(APIUserAbortError);
    expect(seen).toHaveLength(1);
    await expect(
      transport().request({ method: "GET", path: "/" }, { signal: AbortSignal.abort() }),
    ).rejects.toBeInstanceOf(APIUserAbortError);
  });

  it("a refused connection is an APIConnectionError after the retries", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    let attempts = 0;
    const countingFetch: typeof fetch = (input, init) => {
      attempts++;
      return fetch(input, init);
    };
    const e = await transport({
      baseUrl: `http://127.0.0.1:${port}`,
      fetch: countingFetch,
      maxRetries: 1,
      random: (b) => b.fill(255),
    })
      .request({ method: "GET", path: "/v1/health" })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(APIConnectionError);
    expect(e).not.toBeInstanceOf(APIConnectionTimeoutError);
    expect(attempts).toBe(2);
  });

  it("accepts 304 only when asked", async () => {
    script = [
      (_q, res) => {
        res.writeHead(304, { etag: '"abc"' });
        res.end();
      },
    ];
    const r = await transport().request({ method: "GET", path: "/m", allowNotModified: true });
    expect(r.status).toBe(304);
  });
});
