import { describe, expect, it } from "vitest";
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIUserAbortError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  FedgeAPIError,
  FedgeClientError,
  InternalServerError,
  NotFoundError,
  PayloadTooLargeError,
  PermissionDeniedError,
  RateLimitError,
  parseRetryAfterMs,
} from "./errors.ts";

const envelope = (code: string, message = "m") => ({ error: { code, message } });

describe("FedgeAPIError.generate", () => {
  const cases: [number, new (...a: never[]) => FedgeAPIError, string][] = [
    [400, BadRequestError, "validation_failed"],
    [401, AuthenticationError, "unauthorized"],
    [403, PermissionDeniedError, "device_revoked"],
    [404, NotFoundError, "model_not_found"],
    [409, ConflictError, "round_closed"],
    [413, PayloadTooLargeError, "payload_too_large"],
    [429, RateLimitError, "rate_limited"],
    [500, InternalServerError, "internal"],
    [503, InternalServerError, "internal"],
  ];
  it.each(cases)("maps %i to its subclass and keeps the server's code", (status, cls, code) => {
    const headers = new Headers({ "x-request-id": "req-123" });
    const err = FedgeAPIError.generate(status, envelope(code, "why"), headers);
    expect(err).toBeInstanceOf(cls);
    expect(err).toBeInstanceOf(FedgeAPIError);
    expect(err).toBeInstanceOf(FedgeClientError);
    expect(err.status).toBe(status);
    expect(err.code).toBe(code);
    expect(err.message).toBe("why");
    expect(err.requestId).toBe("req-123");
    expect(err.name).toBe(cls.name);
  });

  it("other 4xx statuses give the base class", () => {
    const err = FedgeAPIError.generate(415, envelope("unsupported_media_type"));
    expect(err.constructor).toBe(FedgeAPIError);
    expect(err.code).toBe("unsupported_media_type");
  });

  it("derives the code from the status when the body is not the envelope", () => {
    const a = FedgeAPIError.generate(502, "<html>bad gateway</html>");
    expect(a).toBeInstanceOf(InternalServerError);
    expect(a.code).toBe("internal");
    expect(a.message).toContain("bad gateway");
    const b = FedgeAPIError.generate(404, undefined);
    expect(b.code).toBe("not_found");
    expect(b.message).toBe("HTTP 404");
    const c = FedgeAPIError.generate(400, { error: { code: "Not Snake", message: 5 } });
    expect(c.code).toBe("bad_request");
    expect(c.requestId).toBeUndefined();
    // a status the edge's table lacks keeps the SDK's own fallback
    expect(FedgeAPIError.generate(418, undefined).code).toBe("http_error");
    expect(FedgeAPIError.generate(415, "").code).toBe("unsupported_media_type");
  });

  it("connection, timeout and abort errors carry no status", () => {
    const conn = new APIConnectionError({ cause: new Error("ECONNREFUSED") });
    expect(conn.status).toBeUndefined();
    expect(conn.code).toBe("connection_error");
    const t = new APIConnectionTimeoutError();
    expect(t).toBeInstanceOf(APIConnectionError);
    expect(t.code).toBe("timeout");
    const a = new APIUserAbortError();
    expect(a).not.toBeInstanceOf(APIConnectionError);
    expect(a.code).toBe("aborted");
  });

  it("RateLimitError exposes Retry-After", () => {
    const err = FedgeAPIError.generate(429, envelope("rate_limited"), new Headers({ "retry-after": "7" }));
    expect((err as RateLimitError).retryAfterMs).toBe(7000);
  });
});

describe("parseRetryAfterMs", () => {
  const now = Date.parse("2026-11-23T12:00:00Z");
  it("reads seconds, an HTTP date and retry-after-ms", () => {
    expect(parseRetryAfterMs(new Headers({ "retry-after": "3" }), now)).toBe(3000);
    expect(parseRetryAfterMs(new Headers({ "retry-after": "0.5" }), now)).toBe(500);
    expect(parseRetryAfterMs(new Headers({ "retry-after": "Mon, 23 Nov 2026 12:00:05 GMT" }), now)).toBe(5000);
    expect(parseRetryAfterMs(new Headers({ "retry-after": "Mon, 23 Nov 2026 11:00:00 GMT" }), now)).toBe(0);
    expect(parseRetryAfterMs(new Headers({ "retry-after-ms": "250", "retry-after": "9" }), now)).toBe(250);
  });
  it("ignores absent or garbage values", () => {
    expect(parseRetryAfterMs(new Headers(), now)).toBeUndefined();
    expect(parseRetryAfterMs(new Headers({ "retry-after": "soon" }), now)).toBeUndefined();
    expect(parseRetryAfterMs(new Headers({ "retry-after": "-3" }), now)).toBeUndefined();
    expect(parseRetryAfterMs(new Headers({ "retry-after-ms": "x", "retry-after": "1" }), now)).toBe(1000);
  });
});
