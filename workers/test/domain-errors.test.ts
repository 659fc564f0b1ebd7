import { describe, expect, it } from "vitest";
import { FedgeError, UpdateCodecError } from "@fedge/protocol";
import { OnnxFormatError, UnsupportedModelError } from "@fedge/ml";
import { InvalidPrivacyParameterError, PrivacyBudgetExceededError } from "@fedge/privacy";
import { fedgeErrorOf } from "../src/domain-errors.ts";

describe("fedgeErrorOf: the edge maps the libraries' domain errors to the wire", () => {
  const cases: [string, unknown, number, string][] = [
    [
      "budget exceeded",
      new PrivacyBudgetExceededError("p", "p_2", { epsilon: 1, delta: 1e-5 }, 1.2),
      409,
      "budget_exceeded",
    ],
    [
      "invalid privacy parameter",
      new InvalidPrivacyParameterError("delta must be in (0, 1), got 2"),
      400,
      "bad_request",
    ],
    [
      "unreachable target",
      new InvalidPrivacyParameterError("too low", { reason: "unreachable_target" }),
      400,
      "bad_request",
    ],
    ["duplicate round", new InvalidPrivacyParameterError("r1 twice", { reason: "duplicate_round" }), 409, "conflict"],
    ["ONNX bytes", new OnnxFormatError("truncated"), 400, "invalid_model"],
    ["unservable ONNX", new UnsupportedModelError("opset", "opset 27"), 400, "invalid_model"],
    ["update codec", new UpdateCodecError("oversize", "too big"), 413, "payload_too_large"],
  ];
  it.each(cases)("%s", (_name, err, status, code) => {
    const mapped = fedgeErrorOf(err)!;
    expect(mapped).toBeInstanceOf(FedgeError);
    expect({ status: mapped.status, code: mapped.code }).toEqual({ status, code });
    expect(mapped.message).toContain((err as Error).message);
  });

  it("passes FedgeErrors through and leaves unknown errors to the 500 handler", () => {
    const e = new FedgeError("conflict", 409, "x");
    expect(fedgeErrorOf(e)).toBe(e);
    expect(fedgeErrorOf(new RangeError("bug"))).toBeUndefined();
  });
});
