import { describe, expect, it } from "vitest";
import { ErrorCode, ErrorEnvelope, FedgeError, STATUS_ERROR_CODES, codeForStatus } from "./errors.ts";

describe("FedgeError", () => {
  it("serialises to the one error envelope", () => {
    const err = new FedgeError("nonce_used", 409, "nonce already spent");
    expect(ErrorEnvelope.parse(err.toJSON())).toEqual({
      error: { code: "nonce_used", message: "nonce already spent" },
    });
    expect(err.status).toBe(409);
  });

  it("rejects envelopes whose code is not snake_case", () => {
    expect(ErrorEnvelope.safeParse({ error: { code: "Bad Code", message: "x" } }).success).toBe(false);
    expect(ErrorEnvelope.safeParse({ error: { message: "x" } }).success).toBe(false);
  });
});

describe("codeForStatus", () => {
  it("names each status of the shared table with a known error code, any 5xx internal, others null", () => {
    for (const [status, code] of Object.entries(STATUS_ERROR_CODES)) {
      expect(ErrorCode.safeParse(code).success, status).toBe(true);
      expect(codeForStatus(Number(status))).toBe(code);
    }
    expect(codeForStatus(404)).toBe("not_found");
    expect(codeForStatus(429)).toBe("rate_limited");
    expect(codeForStatus(500)).toBe("internal");
    expect(codeForStatus(503)).toBe("internal");
    expect(codeForStatus(418)).toBeNull();
    expect(codeForStatus(200)).toBeNull();
  });
});
