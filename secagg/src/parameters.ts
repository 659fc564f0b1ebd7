/**
 * @module
 * Choosing SecAgg+'s graph degree k and share threshold t for a round of n devices (Bell, Bonawitz, Gascón, Lepoint,
 * Raykova, CCS 2020, "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead", §3–4).
 *
 * Each device shares its two secrets with its k graph neighbours only, t of whom must answer in the unmasking stage.
 * - Privacy: t > k/2. An honest neighbour reveals exactly one of the two shares it holds for a device (the self-mask
 *   seed share when the device survived, the key share when it dropped), so a server can never hold t shares of both.
 * - Correctness: up to δ·n devices drop (the issue asks δ = 1/3), independently of the random graph labelling. A
 *   device's dropped neighbours then follow a hypergeometric law, and the round fails only when some device keeps
 *   fewer than t live neighbours: union bound n · P[X > k − t] ≤ 2^−η, X ~ HG(n − 1, ⌊δn⌋, k).
 * The smallest even k that meets both is chosen; when it reaches n − 1 the graph is complete and the protocol is the
 * original SecAgg (Bonawitz et al., CCS 2017). At δ = 1/3 the savings start above about 150 devices (n = 100 → k = 68,
 * n = 300 → k ≈ 166), and grow as O(log n) after that, which is why SecAgg+ and not SecAgg.
 *
 * These are the exact minima for an even k at δ = 1/3, η = 30. At n = 100, k = 68 is forced with no slack: t > k/2
 * leaves k − t = k/2 − 1 dropped neighbours to tolerate and 33 may drop, so k = 68 survives any dropouts, while k = 66
 * fails with n·P = 2^−18.1. At n = 300, k = 164 gives 2^−28.9 and k = 166 gives 2^−30.1. A Harary graph of odd degree
 * (n even) would keep the same slack with one neighbour fewer (67, 165). What moves k is the dropout fraction, not η:
 * η = 20 gives 68 and 146; δ = 0.1 gives 22 and 38; δ = 0.05 gives 12 and 24 (n = 100 and 300). A device's SecAgg+
 * time is about k times a per-neighbour cost set by WebCrypto (bench/secagg-attribution.ts).
 */
import { modulusMask } from "./modular.ts";

export interface SecAggParameters {
  /** n, devices in the roster (those that advertised keys). */
  devices: number;
  /** k, neighbours of each device in the Harary graph (n − 1: complete graph, i.e. SecAgg). */
  neighbours: number;
  /** t, shares needed to recover a device's secret; t > k/2. */
  threshold: number;
  /** Fewest devices that may remain at any stage before the round aborts: n − ⌊δn⌋. */
  minSurvivors: number;
  /** b: values live in Z_{2^b}. */
  bits: number;
  /** d': values per input vector. */
  length: number;
}

export interface ChooseParametersOptions {
  /** δ, the fraction of the roster that may drop out. @default 1/3 */
  dropoutFraction?: number;
  /** η: the round fails to reconstruct with probability at most 2^−η under δ·n random dropouts. @default 30 */
  failureBits?: number;
}

/** The smallest parameters that meet the privacy and correctness conditions above for n devices. */
export function chooseParameters(
  devices: number,
  bits: number,
  length: number,
  options: ChooseParametersOptions = {},
): SecAggParameters {
  const dropoutFraction = options.dropoutFraction ?? 1 / 3;
  const failureBits = options.failureBits ?? 30;
  if (!Number.isInteger(devices) || devices < 3 || devices > 0xffff) {
    throw new RangeError(`secure aggregation needs 3 to 65535 devices, got ${devices}`);
  }
  if (!(dropoutFraction >= 0 && dropoutFraction < 0.5)) throw new RangeError("dropoutFraction must be in [0, 0.5)");
  if (!(failureBits > 0)) throw new RangeError("failureBits must be positive");
  modulusMask(bits);
  if (!Number.isInteger(length) || length < 1) throw new RangeError(`length must be a positive integer, got ${length}`);
  const dropped = Math.floor(dropoutFraction * devices);
  const budget = 2 ** -failureBits;
  for (let k = 2; k < devices - 1; k += 2) {
    const t = k / 2 + 1;
    if (k - t < Math.min(dropped, k) && devices * hypergeometricUpperTail(devices - 1, dropped, k, k - t + 1) > budget)
      continue;
    return { devices, neighbours: k, threshold: t, minSurvivors: devices - dropped, bits, length };
  }
  const k = devices - 1;
  const t = Math.floor(k / 2) + 1;
  if (k - t < dropped) throw new RangeError(`${devices} devices cannot survive ${dropped} dropouts with t > k/2`);
  return { devices, neighbours: k, threshold: t, minSurvivors: devices - dropped, bits, length };
}

/** P[X ≥ m] for X ~ HG(population, successes, draws), summed in log space. */
export function hypergeometricUpperTail(population: number, successes: number, draws: number, m: number): number {
  let p = 0;
  const total = logChoose(population, draws);
  for (let x = Math.max(m, 0); x <= Math.min(draws, successes); x++) {
    p += Math.exp(logChoose(successes, x) + logChoose(population - successes, draws - x) - total);
  }
  return p;
}

function logChoose(n: number, k: number): number {
  if (k < 0 || k > n) return -Infinity;
  let s = 0;
  for (let i = 0; i < k; i++) s += Math.log(n - i) - Math.log(i + 1);
  return s;
}
