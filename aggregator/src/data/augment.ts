/**
 * @module
 * Deterministic data augmentation for 28×28 images: copies of every sample translated by whole pixels (the "elastic /
 * affine distortions expand the training set" idea of Simard, Steinkraus & Platt, ICDAR 2003, §2, restricted to
 * integer shifts). Used to train the seed model centrally; never applied to device data.
 */
import type { Dataset } from "./mnist.ts";

const SIDE = 28;

/** The 3×3 neighbourhood of shifts: (0,0), the four axis shifts and the four diagonals, by one pixel. */
export const NINE_SHIFTS: readonly (readonly [number, number])[] = [
  [0, 0],
  [1, 0],
  [-1, 0],
  [0, 1],
  [0, -1],
  [1, 1],
  [-1, -1],
  [1, -1],
  [-1, 1],
];

/**
 * For every sample, one copy per shift `[dx, dy]` (pixels right, down; vacated pixels are 0), in sample-major order:
 * row `i · shifts.length + s` is sample `i` shifted by `shifts[s]`.
 * @throws {RangeError} when the data is not 28×28 images or a shift is not an integer in [-27, 27].
 */
export function shiftAugment(data: Dataset, shifts: readonly (readonly [number, number])[]): Dataset {
  if (data.x.length !== data.n * SIDE * SIDE || data.y.length !== data.n) {
    throw new RangeError(`data must hold n = ${data.n} images of ${SIDE}×${SIDE} and n labels`);
  }
  for (const [dx, dy] of shifts) {
    if (!Number.isInteger(dx) || !Number.isInteger(dy) || Math.abs(dx) >= SIDE || Math.abs(dy) >= SIDE) {
      throw new RangeError(`shift [${dx}, ${dy}] must be integers in [-27, 27]`);
    }
  }
  const n = data.n * shifts.length;
  const x = new Float32Array(n * SIDE * SIDE);
  const y = new Uint8Array(n);
  let r = 0;
  for (let i = 0; i < data.n; i++) {
    const src = i * SIDE * SIDE;
    for (const [dx, dy] of shifts) {
      const dst = r * SIDE * SIDE;
      for (let row = Math.max(0, dy); row < Math.min(SIDE, SIDE + dy); row++) {
        const from = src + (row - dy) * SIDE;
        const to = dst + row * SIDE;
        for (let col = Math.max(0, dx); col < Math.min(SIDE, SIDE + dx); col++) x[to + col] = data.x[from + col - dx]!;
      }
      y[r++] = data.y[i]!;
    }
  }
  return { x, y, n };
}
