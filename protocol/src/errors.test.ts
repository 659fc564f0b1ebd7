import { describe, expect, it } from "vitest";
import { ErrorEnvelope, FedgeError } from "./errors.ts";

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
