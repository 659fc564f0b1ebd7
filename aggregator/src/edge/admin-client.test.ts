import { describe, expect, it } from "vitest";
import { EdgeAdminClient, EdgeAdminError, EdgeAdminTimeoutError } from "./admin-client.ts";

// The client's requests against the real edge are exercised end to end by test/e2e-demo.test.ts (wrangler dev).
describe("EdgeAdminClient options", () => {
  it("refuses a bad base URL, a bad signing key, or no credential at all", () => {
    expect(() => new EdgeAdminClient({ baseUrl: "127.0.0.1:8787", adminToken: "t" })).toThrow(/baseUrl/);
    expect(() => new EdgeAdminClient({ baseUrl: "127.0.0.1:8787", adminToken: "t" })).toThrow(TypeError);
    expect(() => new EdgeAdminClient({ baseUrl: "http://127.0.0.1:8787", signingKey: new Uint8Array(32) })).toThrow(
      /64-byte/,
    );
    expect(() => new EdgeAdminClient({ baseUrl: "http://127.0.0.1:8787" })).toThrow(/signingKey or an adminToken/);
    expect(new EdgeAdminClient({ baseUrl: "http://127.0.0.1:8787/", adminToken: "t" }).baseUrl).toBe(
      "http://127.0.0.1:8787",
    );
  });

  it("needs the admin token for operator calls when it only holds a signing key", async () => {
    const c = new EdgeAdminClient({ baseUrl: "http://127.0.0.1:1", signingKey: new Uint8Array(64) });
    await expect(c.createApiKey("x")).rejects.toThrow(/needs the admin token/);
    await expect(c.createApiKey("x")).rejects.toMatchObject({ name: "EdgeClientError", reason: "needs_admin_token" });
  });
});

describe("EdgeAdminError", () => {
  it("keeps a known edge code, maps an unknown one to internal, and names the request", () => {
    const known = new EdgeAdminError(409, "round_closed", "closed", "POST", "/v1/admin/rounds/m_1/close");
    expect(known.code).toBe("round_closed");
    expect(known.status).toBe(409);
    expect(known.message).toContain("POST /v1/admin/rounds/m_1/close → 409 round_closed");
    const odd = new EdgeAdminError(418, "teapot", "?", "GET", "/x");
    expect(odd.code).toBe("internal");
    expect(odd.edgeCode).toBe("teapot");
  });
});

describe("EdgeAdminClient timeouts", () => {
  it("gives up on an edge that never answers, or stops sending the body, after timeoutMs", async () => {
    const { createServer } = await import("node:http");
    const server = createServer((req, res) => {
      if (req.url?.startsWith("/v1/admin/rounds/stall_1")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.write('{"round_id":');
        return; // and never more
      }
      // never answers
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const c = new EdgeAdminClient({ baseUrl: `http://127.0.0.1:${port}`, adminToken: "t", timeoutMs: 300 });
      const t0 = Date.now();
      await expect(c.roundStatus("silent_1")).rejects.toThrow(EdgeAdminTimeoutError);
      await expect(c.roundStatus("stall_1")).rejects.toThrow(/no answer from the edge within 300 ms/);
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(() => new EdgeAdminClient({ baseUrl: "http://127.0.0.1:1", adminToken: "t", timeoutMs: 0 })).toThrow(
        /timeoutMs/,
      );
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 10_000);
});
