/**
 * @module
 * Softmax cross-entropy over a batch of logits, numerically stable (the row maximum is subtracted before `exp`):
 * `L_r = log Σ_j exp(z_rj − m_r) − (z_{r,y_r} − m_r)`, `∂L_r/∂z_rj = softmax(z_r)_j − [j = y_r]`.
 */

/**
 * Sum of the per-row losses of `rows` rows of `classes` logits. When `grad` is given, writes
 * `scale · (softmax(z_r) − onehot(y_r))` into it (use `scale = 1/rows` for the gradient of the batch mean).
 * Labels are assumed valid (checked by the callers).
 */
export function softmaxCrossEntropy(
  logits: Float64Array,
  labels: ArrayLike<number>,
  rows: number,
  classes: number,
  grad: Float64Array | null,
  scale = 1,
): number {
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * classes;
    let m = -Infinity;
    for (let j = 0; j < classes; j++) if (logits[o + j]! > m) m = logits[o + j]!;
    let s = 0;
    if (grad) {
      for (let j = 0; j < classes; j++) {
        const e = Math.exp(logits[o + j]! - m);
        grad[o + j] = e;
        s += e;
      }
      const k = scale / s;
      for (let j = 0; j < classes; j++) grad[o + j]! *= k;
    } else {
      for (let j = 0; j < classes; j++) s += Math.exp(logits[o + j]! - m);
    }
    const y = labels[r]!;
    total += Math.log(s) - (logits[o + y]! - m);
    if (grad) grad[o + y]! -= scale;
  }
  return total;
}
