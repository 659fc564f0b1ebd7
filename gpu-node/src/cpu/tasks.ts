/**
 * @module
 * The work the threads of the cpu backend share, identical on the main thread and in the workers (`worker.ts`): a
 * {@link Job} names byte addresses in the backend's shared memory; its pieces are norm blocks (`math.NORM_BLOCK`
 * elements), claimed dynamically, so threads never touch the same output bytes and the results do not depend on which
 * thread ran which piece. The arithmetic is the canonical one of `backend.ts`:
 *
 * - `norm`: for every row, the block's squared norm (8 float64 lanes from zero, `math.combineLanes`) is written to
 *   `sums[row·blocks + block]`; the host adds the block sums in block order.
 * - `axpy`: acc_i ← fl32(acc_i + fl32(f_k·u_k,i)) for the rows k in order, tile by tile (the tile of acc stays in
 *   cache), four rows per pass over the tile.
 * - `finish`: acc_i ← fl32(fl32(acc_i + n_i)·r) with n_i = fl32(σ·z_i), z_i ~ N(0, 1) drawn by
 *   `fillStandardNormalBatch` of @fedge/privacy (the Ziggurat of `fillStandardNormal`, float64, in its blockwise
 *   order: nothing here has an order to reproduce) from crypto.getRandomValues (each piece draws its own; σ = 0 adds
 *   nothing); fl32(σ·z_i) is exactly what `fillGaussian` would have written.
 * - `noise` then `finishNoise`: the same n_i, drawn ahead in the background while updates are added (σ known at open)
 *   and stored as float32; `normals` then `finishNormals`: the same with the z_i stored (σ not known yet).
 *
 * Blocks start at a multiple of `NORM_BLOCK` (hence of 8 and of 4); only the last block can have a tail of fewer than
 * 8 (norm) or 4 (axpy) elements, done with TypedArray loops.
 */
import { fillStandardNormalBatch } from "@fedge/privacy";
import { NORM_BLOCK, addSquaresToLanes, combineLanes } from "../math.ts";
import type { SimdKernels } from "./simd.ts";

export interface NormPhase {
  op: "norm";
  /** Byte address of every row (an update of `length` float32). */
  rows: number[];
  /** Byte address of the float64 block sums, `rows.length × blocks`. */
  sums: number;
}

export interface AxpyPhase {
  op: "axpy";
  /** Byte address of the running sum (`length` float32). */
  acc: number;
  rows: number[];
  /** One float32 factor per row. */
  factors: number[];
  /** Elements per tile, a multiple of 4. */
  tile: number;
}

export interface FinishPhase {
  op: "finish";
  acc: number;
  sigma: number;
  /** fround(1/denominator). */
  recip: number;
}

/** Draws the noise n_i = fl32(σ·z_i) (float32; z_i as in `finish`) into `noise`. */
export interface NoisePhase {
  op: "noise";
  /** Byte address of `length` float32. */
  noise: number;
  sigma: number;
}

/** acc_i ← fl32(fl32(acc_i + n_i)·r) with the noise of a {@link NoisePhase} (the same values as `finish`). */
export interface FinishNoisePhase {
  op: "finishNoise";
  acc: number;
  noise: number;
  recip: number;
}

/** Draws standard normals z_i (float64, as in `finish`, from crypto.getRandomValues) into `z`. */
export interface NormalsPhase {
  op: "normals";
  /** Byte address of `length` float64. */
  z: number;
}

/** acc_i ← fl32(fl32(acc_i + fl32(σ·z_i))·r) with the normals of a {@link NormalsPhase} (the same values as `finish`). */
export interface FinishNormalsPhase {
  op: "finishNormals";
  acc: number;
  z: number;
  sigma: number;
  recip: number;
}

export type Phase =
  NormPhase | AxpyPhase | FinishPhase | NoisePhase | FinishNoisePhase | NormalsPhase | FinishNormalsPhase;

/**
 * A unit of parallel work: every phase is cut into one piece per norm block, numbered phase by phase; threads claim
 * pieces from the shared counter `ctl[0]` and count finished ones in `ctl[1]` (two int32 at byte address
 * `counter`), so a thread that is slow to be scheduled simply takes fewer pieces. Pieces of one job write disjoint
 * bytes (the phases of one job must not depend on each other).
 */
export interface Job {
  counter: number;
  length: number;
  phases: Phase[];
  /** Byte address of 64 bytes of scratch private to the thread that runs this copy of the job. */
  lanes: number;
}

/** Number of norm blocks of a vector of `length` elements. */
export function normBlocks(length: number): number {
  return Math.ceil(length / NORM_BLOCK);
}

function normPiece(k: SimdKernels, job: Job, p: NormPhase, b: number): void {
  const blocks = normBlocks(job.length);
  const buf = k.memory.buffer;
  const lanes = new Float64Array(buf, job.lanes, 8);
  const sums = new Float64Array(buf, p.sums, p.rows.length * blocks);
  const start = b * NORM_BLOCK;
  const len = Math.min(NORM_BLOCK, job.length - start);
  const n8 = len >>> 3;
  for (let r = 0; r < p.rows.length; r++) {
    const row = p.rows[r]!;
    lanes.fill(0);
    if (n8 > 0) k.sumsq8(row + 4 * start, n8, job.lanes);
    if (len > 8 * n8) addSquaresToLanes(new Float32Array(buf, row + 4 * (start + 8 * n8), len - 8 * n8), lanes);
    sums[r * blocks + b] = combineLanes(lanes);
  }
}

function axpyPiece(k: SimdKernels, job: Job, p: AxpyPhase, b: number): void {
  const from = b * NORM_BLOCK;
  const to = Math.min(job.length, from + NORM_BLOCK);
  const end4 = from + ((to - from) & ~3);
  const { rows, factors: f } = p;
  for (let s = from; s < end4; s += p.tile) {
    const n4 = Math.min(p.tile, end4 - s) >>> 2;
    const acc = p.acc + 4 * s;
    const at = (r: number): number => rows[r]! + 4 * s;
    let r = 0;
    // four rows per pass over the tile: the running sum is loaded and stored once per four rows instead of once per
    // row (1.8x faster measured), and every element still adds the rows in order; an odd last vector goes row by row
    for (; r + 4 <= rows.length; r += 4) {
      const n8 = n4 >>> 1;
      if (n8 > 0) k.axpy4(acc, at(r), at(r + 1), at(r + 2), at(r + 3), n8, f[r]!, f[r + 1]!, f[r + 2]!, f[r + 3]!);
      if (n4 & 1) for (let q = r; q < r + 4; q++) k.axpy(acc + 32 * n8, at(q) + 32 * n8, 1, f[q]!);
    }
    for (; r < rows.length; r++) k.axpy(acc, at(r), n4, f[r]!);
  }
  if (end4 < to) {
    const buf = k.memory.buffer;
    const acc = new Float32Array(buf, p.acc, job.length);
    for (let r = 0; r < p.rows.length; r++) {
      const u = new Float32Array(buf, p.rows[r]!, job.length);
      const f = p.factors[r]!;
      for (let i = end4; i < to; i++) acc[i] = acc[i]! + Math.fround(f * u[i]!);
    }
  }
}

let zScratch: Float64Array | undefined;

function finishPiece(k: SimdKernels, job: Job, p: FinishPhase, b: number): void {
  const from = b * NORM_BLOCK;
  const acc = new Float32Array(k.memory.buffer, p.acc + 4 * from, Math.min(NORM_BLOCK, job.length - from));
  const { sigma, recip } = p;
  if (sigma === 0) {
    for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! * recip;
    return;
  }
  // float64 normals, scaled and rounded in the pass that adds them: the values fillGaussian would write, without its
  // extra pass over a float32 scratch (~10% of the noise cost)
  zScratch ??= new Float64Array(NORM_BLOCK);
  const z = zScratch.subarray(0, acc.length);
  fillStandardNormalBatch(z);
  for (let i = 0; i < z.length; i++) acc[i] = Math.fround(acc[i]! + Math.fround(sigma * z[i]!)) * recip;
}

function noisePiece(k: SimdKernels, job: Job, p: NoisePhase, b: number): void {
  const from = b * NORM_BLOCK;
  const noise = new Float32Array(k.memory.buffer, p.noise + 4 * from, Math.min(NORM_BLOCK, job.length - from));
  zScratch ??= new Float64Array(NORM_BLOCK);
  const z = zScratch.subarray(0, noise.length);
  fillStandardNormalBatch(z);
  const { sigma } = p;
  for (let i = 0; i < z.length; i++) noise[i] = sigma * z[i]!;
}

function finishNoisePiece(k: SimdKernels, job: Job, p: FinishNoisePhase, b: number): void {
  const from = b * NORM_BLOCK;
  const len = Math.min(NORM_BLOCK, job.length - from);
  const acc = new Float32Array(k.memory.buffer, p.acc + 4 * from, len);
  const noise = new Float32Array(k.memory.buffer, p.noise + 4 * from, len);
  const { recip } = p;
  for (let i = 0; i < len; i++) acc[i] = Math.fround(acc[i]! + noise[i]!) * recip;
}

function normalsPiece(k: SimdKernels, job: Job, p: NormalsPhase, b: number): void {
  const from = b * NORM_BLOCK;
  fillStandardNormalBatch(new Float64Array(k.memory.buffer, p.z + 8 * from, Math.min(NORM_BLOCK, job.length - from)));
}

function finishNormalsPiece(k: SimdKernels, job: Job, p: FinishNormalsPhase, b: number): void {
  const from = b * NORM_BLOCK;
  const len = Math.min(NORM_BLOCK, job.length - from);
  const acc = new Float32Array(k.memory.buffer, p.acc + 4 * from, len);
  const z = new Float64Array(k.memory.buffer, p.z + 8 * from, len);
  const { sigma, recip } = p;
  for (let i = 0; i < len; i++) acc[i] = Math.fround(acc[i]! + Math.fround(sigma * z[i]!)) * recip;
}

/** Claims and runs pieces of `job` until none is left; returns how many this thread ran. */
export function runJob(k: SimdKernels, job: Job): number {
  const ctl = new Int32Array(k.memory.buffer, job.counter, 2);
  const blocks = normBlocks(job.length);
  const total = blocks * job.phases.length;
  let ran = 0;
  for (;;) {
    const i = Atomics.add(ctl, 0, 1);
    if (i >= total) return ran;
    const p = job.phases[Math.floor(i / blocks)]!;
    const b = i % blocks;
    if (p.op === "norm") normPiece(k, job, p, b);
    else if (p.op === "axpy") axpyPiece(k, job, p, b);
    else if (p.op === "finish") finishPiece(k, job, p, b);
    else if (p.op === "noise") noisePiece(k, job, p, b);
    else if (p.op === "finishNoise") finishNoisePiece(k, job, p, b);
    else if (p.op === "normals") normalsPiece(k, job, p, b);
    else finishNormalsPiece(k, job, p, b);
    ran++;
    if (Atomics.add(ctl, 1, 1) + 1 === total) Atomics.notify(ctl, 1);
  }
}
