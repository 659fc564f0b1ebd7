/**
 * The hand-written check of JSON predict bodies (routes/predict/decode.ts `checkJsonBody`) against the contract it
 * replaces at run time: the `PredictRequest` zod schema, which still documents the body in OpenAPI.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FedgeError, MAX_PREDICT_BATCH, PredictRequest } from "@fedge/protocol";
import { checkJsonBody, decodeJsonBody } from "../src/routes/predict/index.ts";
import { call } from "./registry-helpers.ts";

function outcome(body: unknown): "ok" | string {
  try {
    checkJsonBody(body);
    return "ok";
  } catch (err) {
    expect(err).toBeInstanceOf(FedgeError);
    return (err as FedgeError).code;
  }
}

const number = fc.double({ noNaN: true, noDefaultInfinity: true });
const value = fc.oneof(
  { weight: 20, arbitrary: number },
  fc.constant(null),
  fc.string({ maxLength: 3 }),
  fc.boolean(),
  fc.constant([]),
  fc.constant({}),
);
const row = fc.oneof(
  { weight: 10, arbitrary: fc.array(number, { maxLength: 6 }) },
  fc.array(value, { maxLength: 6 }),
  value,
);
const body = fc.oneof(
  { weight: 6, arbitrary: fc.record({ inputs: fc.array(row, { maxLength: 5 }) }) },
  fc.record({ inputs: fc.array(row, { maxLength: 3 }), extra: value }),
  fc.record({ inputs: value }),
  fc.record({
    inputs_b64: fc.string({ maxLength: 8 }),
    shape: fc.array(fc.integer({ min: -2, max: 9 }), { maxLength: 9 }),
  }),
  fc.record({ inputs_b64: fc.string({ maxLength: 8 }) }),
  fc.jsonValue({ maxDepth: 3 }),
);

describe("checkJsonBody", () => {
  it("accepts exactly the bodies the PredictRequest schema accepts (as JSON.parse produces them)", () => {
    fc.assert(
      fc.property(body, (raw) => {
        const parsed: unknown = JSON.parse(JSON.stringify(raw));
        const zodOk = PredictRequest.safeParse(parsed).success;
        const got = outcome(parsed);
        expect(got === "ok", JSON.stringify(parsed)).toBe(zodOk);
        if (!zodOk) expect(got).toBe("validation_failed");
      }),
      { numRuns: 2_000 },
    );
  });

  it("copies the rows into one float32 batch and checks it against the model afterwards", () => {
    const rows = [
      [0.5, -1, 3],
      [1e-3, 2, 1e30],
    ];
    const checked = checkJsonBody({ inputs: rows });
    expect(decodeJsonBody(checked, [3], 3)).toEqual({
      data: Float32Array.from(rows.flat()),
      shape: [2, 3],
      batch: 2,
    });
    const shapeError = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return [(err as FedgeError).code, (err as FedgeError).status];
      }
      return null;
    };
    expect(shapeError(() => decodeJsonBody(checked, [4], 4))).toEqual(["invalid_shape", 400]);
    expect(
      shapeError(() =>
        decodeJsonBody(
          checkJsonBody({
            inputs: [
              [1, 2, 3],
              [1, 2],
            ],
          }),
          [3],
          3,
        ),
      ),
    ).toEqual(["invalid_shape", 400]);
    const big = { inputs: Array.from({ length: MAX_PREDICT_BATCH + 1 }, () => [1, 2, 3]) };
    expect(shapeError(() => decodeJsonBody(checkJsonBody(big), [3], 3))).toEqual(["payload_too_large", 413]);
  });

  it("reports a non-finite number before any other schema violation, like the validator chain did", () => {
    expect(outcome({ inputs: [["x", Number.POSITIVE_INFINITY]] })).toBe("non_finite");
    expect(outcome({ inputs: [[1, "x"], [Number.NEGATIVE_INFINITY]] })).toBe("non_finite");
    expect(outcome({ inputs: [[1, "x"]] })).toBe("validation_failed");
    expect(outcome({ inputs: [[1, 2]], __proto__x: 1 })).toBe("validation_failed");
  });

  it("still documents the JSON body with the PredictRequest schema in OpenAPI", async () => {
    const doc = await (
      await call("/openapi.json")
    ).json<{
      paths: Record<string, { post?: { requestBody?: { content: Record<string, { schema: { $ref?: string } }> } } }>;
    }>();
    const content = doc.paths["/v1/models/{name}/predict"]?.post?.requestBody?.content;
    expect(content?.["application/json"]?.schema.$ref).toBe("#/components/schemas/PredictRequest");
    expect(Object.keys(content ?? {})).toEqual(["application/json", "application/octet-stream"]);
  });
});
