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
});
