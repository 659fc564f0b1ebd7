/**
 * @module
 * `POST /v1/models/:name/predict` bodies. Two request encodings of one float32 batch:
 *
 * - `application/json` `{"inputs": number[][]}`: one row per example, each row the example's features flattened;
 * - `application/json` `{"inputs_b64": "...", "shape": [n, ...]}`: the batch as little-endian float32 bytes in base64
 *   (RFC 4648 §4 or §5), row-major, 4·Πshape bytes — about 4× smaller than JSON numbers;
 * - `application/octet-stream`: the same raw little-endian float32 bytes as the body, with the shape in the
 *   `x-fedge-shape` header (`"n,784"`; optional: the batch size is inferred from the model's feature count).
 */
import { z } from "zod";
import { ModelName, ModelVersion } from "../common.ts";

/** Most examples per predict call. */
export const MAX_PREDICT_BATCH = 128;
/** Largest predict body (bytes), whatever its encoding. */
export const MAX_PREDICT_BODY_BYTES = 2 * 1024 * 1024;
/** Header carrying the shape of an `application/octet-stream` predict body. */
export const PREDICT_SHAPE_HEADER = "x-fedge-shape";

/**
 * The smallest magnitude a double rounds to ±Infinity at in float32: FLT_MAX plus half its last place, (2 − 2⁻²⁴)·2¹²⁷
 * (IEEE 754 round to nearest, ties to even: FLT_MAX's last bit is odd, so the tie goes up). Every JSON number of a
 * predict row is below it in magnitude, or the edge answers 400 `out_of_range`.
 */
export const FLOAT32_LIMIT = 3.4028235677973366e38;

/** A JSON number the float32 batch holds as a finite value. */
const Float32Number = z.number().gt(-FLOAT32_LIMIT).lt(FLOAT32_LIMIT);

export const PredictJsonRows = z
  .object({
    /**
     * One row per example (at most `MAX_PREDICT_BATCH`; more is a 413, checked by the edge). Each value must stay
     * finite as a float32 (|x| < `FLOAT32_LIMIT`; past it, 400 `out_of_range` naming `inputs[i][j]`).
     */
    inputs: z.array(z.array(Float32Number)).min(1),
  })
  .strict();

export const PredictBase64 = z
  .object({
    inputs_b64: z.string().min(1),
    shape: z.array(z.number().int().positive()).min(1).max(8),
  })
  .strict();

export const PredictRequest = z.union([PredictJsonRows, PredictBase64]).meta({ id: "PredictRequest" });
export type PredictRequest = z.infer<typeof PredictRequest>;

export const PredictQuery = z.object({
  /** Run this version instead of the serving one. */
  version: z.coerce.number().pipe(ModelVersion).optional(),
});

export const PredictResponse = z
  .object({
    /** One row per input example: the model's first output, flattened per example. */
    outputs: z.array(z.array(z.number())),
    model: ModelName,
    version: ModelVersion,
  })
  .meta({ id: "PredictResponse" });
export type PredictResponse = z.infer<typeof PredictResponse>;
