/**
 * @module
 * Data augmentation for 28×28 images, after Simard, Steinkraus & Platt, "Best Practices for Convolutional Neural
 * Networks Applied to Visual Document Analysis", ICDAR 2003, §2 ("expanding the data set" by distortions):
 * - `shiftAugment`: copies of every sample translated by whole pixels (deterministic);
 * - `affineAugment`: copies under a random small affine map (rotation, scale, shear, sub-pixel shift), resampled
 *   bilinearly (§2 uses the same resampling for its affine and elastic distortions).
 * Used to train models centrally on public data; never applied to device data. Pure: randomness is injected.
 */
import type { RandomBytes } from "@fedge/privacy";
import { UniformSource } from "@fedge/ml";
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

/** Ranges of {@link affineAugment}'s random maps; each parameter is drawn uniformly in [−max, max]. */
export interface AffineAugmentOptions {
  /** Copies per sample. */
  copies: number;
  /** Draws the maps (pass `xoshiroRandomBytes(seed)` for a reproducible set). */
  random: RandomBytes;
  /** Largest rotation, degrees. @default 12 */
  maxRotationDeg?: number;
  /** Largest relative scale change (0.1: 0.9×–1.1×). @default 0.1 */
  maxScale?: number;
  /** Largest horizontal shear (x += shear · y). @default 0.15 */
  maxShear?: number;
  /** Largest translation, pixels (fractional: bilinear). @default 2 */
  maxShift?: number;
}

/**
 * For every sample, `copies` images under independent random affine maps about the image centre (see
 * {@link AffineAugmentOptions}), in sample-major order like {@link shiftAugment}; pixels mapped from outside the
 * frame are 0.
 * @throws {RangeError} when the data is not 28×28 images or an option is out of range.
 */
export function affineAugment(data: Dataset, o: AffineAugmentOptions): Dataset {
  if (data.x.length !== data.n * SIDE * SIDE || data.y.length !== data.n) {
    throw new RangeError(`data must hold n = ${data.n} images of ${SIDE}×${SIDE} and n labels`);
  }
  if (!Number.isInteger(o.copies) || o.copies < 1)
    throw new RangeError(`copies must be an integer >= 1, got ${o.copies}`);
  const rot = o.maxRotationDeg ?? 12;
  const scale = o.maxScale ?? 0.1;
  const shear = o.maxShear ?? 0.15;
  const shift = o.maxShift ?? 2;
  for (const [name, v, max] of [
    ["maxRotationDeg", rot, 90],
    ["maxScale", scale, 0.5],
    ["maxShear", shear, 1],
    ["maxShift", shift, SIDE / 2],
  ] as const) {
    if (!(v >= 0 && v <= max)) throw new RangeError(`${name} must be in [0, ${max}], got ${v}`);
  }
  const source = new UniformSource(o.random);
  const draw = (max: number) => (source.uniform53() * 2 - 1) * max;
  const n = data.n * o.copies;
  const x = new Float32Array(n * SIDE * SIDE);
  const y = new Uint8Array(n);
  const c = (SIDE - 1) / 2;
  let r = 0;
  for (let i = 0; i < data.n; i++) {
    const src = data.x.subarray(i * SIDE * SIDE, (i + 1) * SIDE * SIDE);
    for (let k = 0; k < o.copies; k++) {
      // Inverse map (output pixel → source point): rotate by −θ, scale by 1/s, shear, after removing the shift.
      const theta = (draw(rot) * Math.PI) / 180;
      const s = 1 + draw(scale);
      const h = draw(shear);
      const tx = draw(shift);
      const ty = draw(shift);
      const cos = Math.cos(theta) / s;
      const sin = Math.sin(theta) / s;
      const dst = r * SIDE * SIDE;
      for (let row = 0; row < SIDE; row++) {
        const v = row - c - ty;
        for (let col = 0; col < SIDE; col++) {
          const u = col - c - tx;
          const sx = cos * u + (sin + h) * v + c;
          const sy = -sin * u + cos * v + c;
          const x0 = Math.floor(sx);
          const y0 = Math.floor(sy);
          const fx = sx - x0;
          const fy = sy - y0;
          const at = (xx: number, yy: number) =>
            xx >= 0 && xx < SIDE && yy >= 0 && yy < SIDE ? src[yy * SIDE + xx]! : 0;
          x[dst + row * SIDE + col] =
            (1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x0 + 1, y0)) +
            fy * ((1 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
        }
      }
      y[r++] = data.y[i]!;
    }
  }
  return { x, y, n };
}
