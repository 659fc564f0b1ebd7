/**
 * @module
 * How far a quantized model's outputs are from the float32 model's on the same inputs: the maximum and mean absolute
 * difference of every output value (logits), and the share of examples whose arg-max (top-1 class) agrees. Pure.
 */

export interface OutputComparison {
  /** Examples compared (rows of the output). */
  examples: number;
  maxAbsError: number;
  meanAbsError: number;
  /** Fraction of examples with the same arg-max, in [0, 1]. */
  top1Agreement: number;
}

/**
 * Compare two outputs of `rows` examples each (row-major `[rows, k]`; the arg-max is taken over each row's `k`
 * values). Throws `RangeError` when the lengths differ or do not split into `rows` rows.
 */
export function compareOutputs(
  reference: ArrayLike<number>,
  candidate: ArrayLike<number>,
  rows: number,
): OutputComparison {
  if (reference.length !== candidate.length) {
    throw new RangeError(`outputs have ${reference.length} and ${candidate.length} values`);
  }
  if (!Number.isInteger(rows) || rows < 1 || reference.length % rows !== 0) {
    throw new RangeError(`${reference.length} values do not split into ${rows} rows`);
  }
  const k = reference.length / rows;
  let max = 0;
  let sum = 0;
  let agree = 0;
  for (let r = 0; r < rows; r++) {
    let bestRef = 0;
    let bestCand = 0;
    for (let j = 0; j < k; j++) {
      const i = r * k + j;
      const d = Math.abs(reference[i]! - candidate[i]!);
      if (d > max || Number.isNaN(d)) max = d;
      sum += d;
      if (reference[i]! > reference[r * k + bestRef]!) bestRef = j;
      if (candidate[i]! > candidate[r * k + bestCand]!) bestCand = j;
    }
    if (bestRef === bestCand) agree++;
  }
  return {
    examples: rows,
    maxAbsError: max,
    meanAbsError: reference.length > 0 ? sum / reference.length : 0,
    top1Agreement: agree / rows,
  };
}
