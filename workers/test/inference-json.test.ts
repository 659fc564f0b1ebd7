/**
 * The hand-written check of JSON predict bodies (routes/predict/decode.ts `checkJsonBody`) against the contract it
 * replaces at run time: the `PredictRequest` zod schema, which still documents the body in OpenAPI; and the
 * single-pass reader of the common `{"inputs": number[][]}` body (`readJsonRows`) against that general path.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FLOAT32_LIMIT, FedgeError, MAX_PREDICT_BATCH, PredictRequest } from "@fedge/protocol";
import { checkJsonBody, decodeJsonBody } from "../src/routes/predict/index.ts";
import { readJsonRows } from "../src/routes/predict/json-rows.ts";
import { call } from "./registry-helpers.ts";

/** Whether a rows body holds a finite number that float32 cannot hold (the schema refuses it, the edge says why). */
function holdsFloat32Overflow(body: unknown): boolean {
  const rows = (body as { inputs?: unknown } | null)?.inputs;
  return (
    Array.isArray(rows) &&
    rows.some(
      (r) =>
        Array.isArray(r) && r.some((v) => typeof v === "number" && Number.isFinite(v) && Math.abs(v) >= FLOAT32_LIMIT),
    )
  );
}

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
        // The schema refuses a float32 overflow like any violation; the edge names it (unless another field is wrong).
        if (!zodOk && got === "out_of_range") expect(holdsFloat32Overflow(parsed), JSON.stringify(parsed)).toBe(true);
        else if (!zodOk) expect(got).toBe("validation_failed");
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
    expect(outcome({ inputs: [["x", 3.5e38]] })).toBe("out_of_range");
    expect(outcome({ inputs: [[1, 3.5e38], [Number.NEGATIVE_INFINITY]] })).toBe("out_of_range"); // the first bad one
    expect(outcome({ inputs: [[1, "x"]] })).toBe("validation_failed");
    expect(outcome({ inputs: [[1, 2]], __proto__x: 1 })).toBe("validation_failed");
  });

  it("refuses a finite number float32 cannot hold with 400 out_of_range naming its index, as the schema does", () => {
    const largest = 3.4028234663852886e38; // FLT_MAX
    const justBelow = 3.4028235677973362e38; // the double below FLOAT32_LIMIT: rounds down to FLT_MAX
    const ok = checkJsonBody({ inputs: [[largest, -justBelow, 1e-46]] });
    expect(ok.kind === "rows" && Array.from(ok.data!)).toEqual([largest, -largest, 0]);
    expect(PredictRequest.safeParse({ inputs: [[largest, -justBelow]] }).success).toBe(true);
    for (const [v, at] of [
      [FLOAT32_LIMIT, "inputs[1][2]"],
      [-FLOAT32_LIMIT, "inputs[1][2]"],
      [1.7976931348623157e308, "inputs[1][2]"],
    ] as const) {
      const body = {
        inputs: [
          [0, 0, 0],
          [0, 0, v],
        ],
      };
      let err: unknown = null;
      try {
        checkJsonBody(body);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FedgeError);
      expect([(err as FedgeError).code, (err as FedgeError).status]).toEqual(["out_of_range", 400]);
      expect((err as FedgeError).message).toContain(`${at} is ${v}`);
      expect(PredictRequest.safeParse(body).success).toBe(false);
    }
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

/** What the general path makes of a JSON text: the checked body, or the error code it answers. */
function general(text: string): ReturnType<typeof checkJsonBody> | string {
  try {
    return checkJsonBody(JSON.parse(text));
  } catch (err) {
    return err instanceof SyntaxError ? "invalid_json" : (err as FedgeError).code;
  }
}

function bits(a: Float32Array | null): string {
  return a === null ? "null" : Array.from(new Uint32Array(a.slice().buffer)).join(",");
}

/** Random JSON whitespace. */
const space = fc.constantFrom("", "", "", " ", "\n", "\t", "\r\n  ");
/** A finite number written the ways JSON producers write them. */
const numberText = fc
  .tuple(
    fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.double({ min: -1, max: 1, noNaN: true }),
      fc.float({ noNaN: true, noDefaultInfinity: true }).map(Math.fround),
      fc.integer({ min: -1e6, max: 1e6 }),
      fc.constantFrom(0, -0, 1e-45, 3.4028235677973366e38, 1e-320, 0.1, 0.0039215688593685627),
    ),
    fc.integer({ min: 0, max: 20 }),
    fc.constantFrom("json", "exp", "fixed", "upper"),
  )
  .map(([x, digits, style]) => {
    if (style === "exp") return x.toExponential(digits);
    if (style === "fixed" && Math.abs(x) < 1e21) return x.toFixed(digits);
    if (style === "upper") return JSON.stringify(x).toUpperCase();
    return JSON.stringify(x);
  });

describe("readJsonRows (the single-pass reader of {inputs: number[][]})", () => {
  it("gives exactly the float32 batch JSON.parse + checkJsonBody give, whitespace and number styles included", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.tuple(numberText, space, space), { minLength: 30, maxLength: 30 }),
        space,
        (rows, width, cells, ws) => {
          const text =
            `${ws}{${ws}"inputs"${ws}:${ws}[` +
            Array.from(
              { length: rows },
              (_, i) =>
                `${ws}[` +
                Array.from({ length: width }, (_, j) => {
                  const [n, a, b] = cells[(i * width + j) % cells.length]!;
                  return `${a}${n}${b}`;
                }).join(",") +
                `]${ws}`,
            ).join(",") +
            `]${ws}}${ws}`;
          const want = general(text);
          const got = readJsonRows(new TextEncoder().encode(text));
          if (typeof want === "string") {
            // A rounded exponent can overflow a double ("2e+308", non_finite) or a float32 ("3.5e38", out_of_range):
            // the general path answers those, not ours.
            expect(["non_finite", "out_of_range"], text).toContain(want);
            expect(got, text).toBeNull();
            return;
          }
          expect(got, text).not.toBeNull();
          expect(got!.batch).toBe(want.kind === "rows" ? want.batch : -1);
          expect(got!.width).toBe(want.kind === "rows" ? want.width : -1);
          expect(bits(got!.data)).toBe(want.kind === "rows" ? bits(want.data) : "");
        },
      ),
      { numRuns: 500 },
    );
  });

  it("takes nothing the general path would answer differently: any body, or null", () => {
    fc.assert(
      fc.property(body, (raw) => {
        const text = JSON.stringify(raw);
        const got = readJsonRows(new TextEncoder().encode(text));
        if (got === null) return;
        const want = general(text);
        expect(typeof want, text).not.toBe("string");
        if (typeof want === "string" || want.kind !== "rows") throw new Error(text);
        expect([got.batch, got.width, got.raggedRow, bits(got.data)]).toEqual([
          want.batch,
          want.width,
          want.raggedRow,
          bits(want.data),
        ]);
      }),
      { numRuns: 2_000 },
    );
  });

  it("leaves every unusual or bad body to the general path (same 4xx as before)", () => {
    const cases: [string, string][] = [
      ['{"inputs":[[1e999, 1]]}', "non_finite"],
      ['{"inputs":[[1,2],[3]]}', "ok"], // ragged: 400 invalid_shape once the model is known
      ['{"inputs":[]}', "validation_failed"],
      ['{"inputs":[[]]}', "ok"],
      ['{"\\u0069nputs":[[1]]}', "ok"],
      ['{"inputs":[[1]],"inputs":[[2]]}', "ok"],
      ['{"inputs":[[1]],"x":1}', "validation_failed"],
      ['{"inputs":[[1,]]}', "invalid_json"],
      ['{"inputs":[[01]]}', "invalid_json"],
      ['{"inputs":[[1.]]}', "invalid_json"],
      ['{"inputs":[[-]]}', "invalid_json"],
      ['{"inputs":[["1"]]}', "validation_failed"],
      ['{"inputs":[[1]]} x', "invalid_json"],
      ['{"inputs":[[1]]', "invalid_json"],
      ['{"inputs":[[1\u00a0]]}', "invalid_json"],
      ['{"inputs":[[1e-400, 1e400]]}', "non_finite"],
      ['{"inputs":[[3.5e38]]}', "out_of_range"],
      ['{"inputs":[[1, -3.4028235677973366e38]]}', "out_of_range"],
      ['{"inputs":[[1.7976931348623157e308]]}', "out_of_range"],
      ['{"inputs":[[340282356779733661637539395458142568448]]}', "out_of_range"],
      ['{"inputs":[[-3.402823567797336616e38]]}', "out_of_range"], // 19 digits: the hi·10^r + lo path
      [`{"inputs":[${Array.from({ length: MAX_PREDICT_BATCH + 1 }, () => "[1]").join(",")}]}`, "ok"],
    ];
    for (const [text, answer] of cases) {
      expect(readJsonRows(new TextEncoder().encode(text)), text).toBeNull();
      const want = general(text);
      expect(typeof want === "string" ? want : "ok", text).toBe(answer);
    }
    // Numbers the reader hands to the engine's conversion (long mantissas, large exponents) are still exact.
    for (const n of ["1.23456789012345678901234", "123456789012345678901234", "1e-30", "7e25", "-0", "0e99"]) {
      const text = `{"inputs":[[${n}]]}`;
      expect(bits(readJsonRows(new TextEncoder().encode(text))!.data)).toBe(bits(Float32Array.of(JSON.parse(n))));
    }
  });
});
