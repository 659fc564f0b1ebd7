/**
 * @module
 * Simulated clients for `fedge simulate`: Poisson sampling with a CSPRNG coin per client per round, and two update
 * generators that produce each sampled client's update on the fly into a reusable buffer (released once the round
 * engine has added it), so a round holds O(batch × model) memory whatever the population size.
 *
 * - synthetic: Δ_{c,t} = a_c·(θ* − w_t) + s·ξ_{c,t}, where θ* is a fixed target, a_c ∈ [0.5, 1.5) a per-client rate and
 *   ξ_{c,t} uniform pseudo-noise in [−½, ½), all deterministic functions of (seed, client id, round) through a
 *   xorshift32 stream (simulated DATA, not privacy noise: privacy noise only ever comes from the injected CSPRNG).
 *   Training pulls w towards θ*; the report tracks ‖w − θ*‖ / ‖θ*‖.
 * - mnist: each client holds a shard of the MNIST train split and runs real local SGD (@fedge/client/training).
 */
import { cryptoRandomBytes, type RandomBytes } from "@fedge/privacy";
import type { ClientUpdate } from "../strategy/strategy.ts";

/** 2^32 · q as the threshold of a 32-bit coin: P[u < ⌊q·2^32⌉] = q up to 2^-32 (q = 1 always samples). */
function coinThreshold(q: number): number {
  return q >= 1 ? 4294967296 : Math.round(q * 4294967296);
}

/**
 * The ids in [0, population) that a round samples: one independent Bernoulli(q) coin per client from `random` (the
 * Poisson sampling the accountant assumes, arXiv 1710.06963 Alg. 1 line "C_t ← each user independently with
 * probability q"). Lazy: pulls 64 KiB of random bytes at a time.
 */
export function* poissonSample(
  population: number,
  q: number,
  random: RandomBytes = cryptoRandomBytes,
): Generator<number> {
  if (!Number.isSafeInteger(population) || population < 0)
    throw new RangeError(`population must be an integer >= 0, got ${population}`);
  if (!(q > 0 && q <= 1)) throw new RangeError(`sampling rate must be in (0, 1], got ${q}`);
  const threshold = coinThreshold(q);
  const words = new Uint32Array(16384);
  const bytes = new Uint8Array(words.buffer);
  for (let start = 0; start < population; start += words.length) {
    const n = Math.min(words.length, population - start);
    random(n === words.length ? bytes : bytes.subarray(0, n * 4));
    for (let i = 0; i < n; i++) if (words[i]! < threshold) yield start + i;
  }
}

/**
 * A checked-in cohort of a distributed round: every one of `population` devices checks in and inputs to the sum (in
 * order), and `coins` (the Poisson coins, e.g. {@link poissonSample}) say which of them put their update in; the
 * others input a zero update plus their noise share. Holds O(selected) ids.
 */
export function checkedInCohort(
  population: number,
  coins: Iterable<number>,
): { devices: Iterable<number>; selected: ReadonlySet<number> } {
  if (!Number.isSafeInteger(population) || population < 0)
    throw new RangeError(`population must be an integer >= 0, got ${population}`);
  const selected = new Set(coins);
  function* devices() {
    for (let c = 0; c < population; c++) yield c;
  }
  return { devices: devices(), selected };
}

/** A small pool of equal-length Float32Arrays handed out and given back (grows only if a consumer holds more). */
export class BufferPool {
  readonly length: number;
  private readonly free: Float32Array[] = [];
  allocated = 0;
  constructor(length: number) {
    this.length = length;
  }
  take(): Float32Array {
    const b = this.free.pop();
    if (b) return b;
    this.allocated++;
    return new Float32Array(this.length);
  }
  give(b: Float32Array): void {
    this.free.push(b);
  }
}

/** xorshift32 (Marsaglia 2003) seeded by a 32-bit mix of its inputs; returns the next state. Never 0. */
function mix(a: number, b: number, c: number): number {
  let h =
    (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^
      Math.imul(b + 0x7f4a7c15, 0xc2b2ae35) ^
      Math.imul(c + 0x165667b1, 0x27d4eb2f)) >>>
    0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  return h === 0 ? 0x6d2b79f5 : h;
}

const U24 = 1 / 16777216;

/** Options of {@link SyntheticClients}. */
export interface SyntheticClientsOptions {
  /** Parameters per update. */
  length: number;
  /** Seed of the simulated data (not of any privacy noise). */
  seed: number;
  /**
   * Scale s of the per-(client, round) pseudo-noise.
   * @default 0.05
   */
  noiseScale?: number;
}

/** The synthetic population (see the module header). */
export class SyntheticClients {
  readonly length: number;
  readonly target: Float32Array;
  private readonly seed: number;
  private readonly noiseScale: number;
  private readonly gap: Float32Array;

  constructor(o: SyntheticClientsOptions) {
    if (!Number.isInteger(o.length) || o.length < 1)
      throw new RangeError(`length must be an integer >= 1, got ${o.length}`);
    this.length = o.length;
    this.seed = o.seed >>> 0;
    this.noiseScale = o.noiseScale ?? 0.05;
    this.target = new Float32Array(o.length);
    let x = mix(this.seed, 0xffffffff, 0);
    for (let i = 0; i < o.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.target[i] = ((x >>> 8) * U24 - 0.5) * 2;
    }
    this.gap = new Float32Array(o.length);
  }

  /** Call once per round with the current global weights: caches θ* − w. */
  beginRound(weights: Float32Array): void {
    for (let i = 0; i < this.length; i++) this.gap[i] = this.target[i]! - weights[i]!;
  }

  /** Writes client `c`'s round-`t` update into `out`. */
  update(c: number, t: number, out: Float32Array): void {
    let x = mix(this.seed, c, t);
    const a = 0.5 + (x >>> 8) * U24;
    const s = this.noiseScale;
    const gap = this.gap;
    for (let i = 0; i < out.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = a * gap[i]! + s * ((x >>> 8) * U24 - 0.5);
    }
  }

  /** ‖w − θ*‖ / ‖θ*‖. */
  relativeDistance(weights: Float32Array): number {
    let d = 0;
    let n = 0;
    for (let i = 0; i < this.length; i++) {
      const e = weights[i]! - this.target[i]!;
      d += e * e;
      n += this.target[i]! * this.target[i]!;
    }
    return Math.sqrt(d / n);
  }
}

/**
 * Streams the updates of the sampled clients, generated on the fly into pooled buffers. `produce` may return what the
 * device reported with its update (the clip bit of adaptive-clipping rounds, the encoding of distributed rounds).
 */
export async function* streamClientUpdates(
  sampled: Iterable<number>,
  pool: BufferPool,
  produce: (
    client: number,
    out: Float32Array,
  ) => void | { clipBit?: 0 | 1 | undefined; encoded?: Uint32Array | undefined } | Promise<unknown>,
  onSampled?: (client: number) => void,
): AsyncGenerator<ClientUpdate> {
  for (const c of sampled) {
    onSampled?.(c);
    const buf = pool.take();
    let reported: { clipBit?: 0 | 1 | undefined; encoded?: Uint32Array | undefined } | undefined;
    try {
      reported = ((await produce(c, buf)) ?? undefined) as typeof reported;
    } catch (e) {
      pool.give(buf);
      throw e;
    }
    const clipBit = reported?.clipBit;
    const encoded = reported?.encoded;
    yield {
      delta: buf,
      deviceId: `sim-${c}`,
      release: () => pool.give(buf),
      ...(clipBit !== undefined ? { clipBit } : {}),
      ...(encoded !== undefined ? { encoded } : {}),
    };
  }
}
