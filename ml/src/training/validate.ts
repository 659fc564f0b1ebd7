/**
 * @module
 * Input checks shared by the training functions. Wrong types raise `TypeError`, wrong sizes or values `RangeError`,
 * each naming the offending argument; nothing is modified before the checks pass.
 */
import { assertValidMlp, type MlpParams } from "../model-layout/mlp.ts";

/** Labels: one class index per sample. */
export type Labels = Uint8Array | Int32Array;

/** Check the model: shapes chain, buffers are Float32Array of the declared sizes, known activations. */
export function checkParams(params: MlpParams, name = "params"): void {
  if (params === null || typeof params !== "object" || !Array.isArray(params.layers)) {
    throw new TypeError(`${name} must be an MlpParams object with a layers array`);
  }
  params.layers.forEach((l, i) => {
    if (!(l.weight instanceof Float32Array) || !(l.bias instanceof Float32Array)) {
      throw new TypeError(`${name}: layer ${i} weight and bias must be Float32Array`);
    }
    if (!Number.isInteger(l.inFeatures) || l.inFeatures < 1 || !Number.isInteger(l.outFeatures) || l.outFeatures < 1) {
      throw new RangeError(`${name}: layer ${i} has invalid shape ${l.inFeatures}×${l.outFeatures}`);
    }
    if (l.activation !== "relu" && l.activation !== "none") {
      throw new TypeError(`${name}: layer ${i} has unknown activation ${JSON.stringify(l.activation)}`);
    }
  });
  assertValidMlp(params);
}

/** Check that every parameter is finite. */
export function checkFiniteParams(params: MlpParams, name = "params"): void {
  params.layers.forEach((l, i) => {
    if (firstNonFinite(l.weight) >= 0 || firstNonFinite(l.bias) >= 0) {
      throw new RangeError(`${name}: layer ${i} contains a non-finite parameter`);
    }
  });
}

/** Index of the first NaN/±Infinity in `v`, or -1. */
export function firstNonFinite(v: ArrayLike<number>): number {
  for (let i = 0; i < v.length; i++) {
    const a = v[i]!;
    // a - a is NaN exactly for NaN and ±Infinity.
    if (a - a !== 0) return i;
  }
  return -1;
}

/**
 * Check features `x` (row-major `n × inFeatures`) and return `n`. When `n` is given, `x` must hold exactly `n` rows.
 */
export function checkFeatures(params: MlpParams, x: Float32Array, n?: number): number {
  if (!(x instanceof Float32Array)) throw new TypeError("x must be a Float32Array (row-major n × inFeatures)");
  const inF = params.layers[0]!.inFeatures;
  if (n !== undefined) {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`);
    if (x.length !== n * inF) {
      throw new RangeError(`x has ${x.length} values, expected n × inFeatures = ${n} × ${inF} = ${n * inF}`);
    }
  } else if (x.length % inF !== 0) {
    throw new RangeError(`x has ${x.length} values, not a multiple of inFeatures = ${inF}`);
  }
  const bad = firstNonFinite(x);
  if (bad >= 0) {
    throw new RangeError(
      `x contains a non-finite value (${x[bad]}) at sample ${Math.floor(bad / inF)}, feature ${bad % inF}`,
    );
  }
  return x.length / inF;
}

/** Check features and labels together; returns the number of samples (at least one). */
export function checkDataset(params: MlpParams, x: Float32Array, y: Labels): number {
  const n = checkFeatures(params, x);
  if (!(y instanceof Uint8Array || y instanceof Int32Array))
    throw new TypeError("y must be a Uint8Array or Int32Array");
  if (y.length !== n) throw new RangeError(`x holds ${n} samples but y holds ${y.length} labels`);
  if (n === 0) throw new RangeError("the dataset is empty");
  const classes = params.layers[params.layers.length - 1]!.outFeatures;
  for (let i = 0; i < n; i++) {
    const c = y[i]!;
    if (c < 0 || c >= classes) throw new RangeError(`label ${c} at sample ${i} is outside [0, ${classes})`);
  }
  return n;
}

/** Check a trainable scope value. */
export function checkScope(scope: unknown): asserts scope is "all" | "head" {
  if (scope !== "all" && scope !== "head")
    throw new TypeError(`scope must be "all" or "head", got ${JSON.stringify(scope)}`);
}
