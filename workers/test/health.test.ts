import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

describe("meta routes", () => {
  it("answers the health probe", async () => {
    const res = await exports.default.fetch("http://edge/v1/health");
    expect(res.status).toBe(200);
    const body = await res.json<{ status: string; service: string }>();
    expect(body).toMatchObject({ status: "ok", service: "fedge" });
  });

  it("serves an OpenAPI 3.1 document that lists the health route", async () => {
    const res = await exports.default.fetch("http://edge/openapi.json");
    expect(res.status).toBe(200);
    const doc = await res.json<{ openapi: string; paths: Record<string, unknown> }>();
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toContain("/v1/health");
  });

  it("answers unknown routes with the JSON error envelope", async () => {
    const res = await exports.default.fetch("http://edge/v1/nope");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: "not_found", message: expect.any(String) } });
  });

  it("answers CORS preflights for the public API, not for admin routes", async () => {
    const preflight = (path: string) =>
      exports.default.fetch(`http://edge${path}`, {
        method: "OPTIONS",
        headers: {
          origin: "https://app.example",
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization, content-type",
        },
      });
    const pub = await preflight("/v1/models/mnist-mlp/predict");
    expect(pub.status).toBe(204);
    expect(pub.headers.get("access-control-allow-origin")).toBe("*");
    expect(pub.headers.get("access-control-allow-headers")).toContain("authorization");
    const admin = await preflight("/v1/admin/keys");
    expect(admin.headers.get("access-control-allow-origin")).toBeNull();
    const get = await exports.default.fetch("http://edge/v1/health", { headers: { origin: "https://app.example" } });
    expect(get.headers.get("access-control-allow-origin")).toBe("*");
  });
});
