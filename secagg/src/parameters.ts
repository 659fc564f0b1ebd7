/**
 * @module
 * Choosing SecAgg+'s graph degree k and share threshold t for a round of n devices (Bell, Bonawitz, Gascón, Lepoint,
 * Raykova, CCS 2020, "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead", §3–4).
 *
 * Each device shares its two secrets with its k graph neighbours only, t of whom must answer in the unmasking stage.
 * Under the random labelling of the Harary graph, the k neighbours of a device are a uniform k-subset of the other
 * n − 1 devices, so the number of them in any fixed set of m devices is X ~ HG(n − 1, m, k).
 * - Privacy. An honest neighbour reveals exactly one of the two shares it holds for a device u (the self-mask seed
 *   share when the server says u survived, the key share when it says u dropped); a corrupt neighbour, one of up to
 *   C devices that collude with the server, reveals both. A server that tells h₁ of u's honest neighbours "survived"
 *   and the other h₂ "dropped" holds X_c + h₁ and X_c + h₂ shares, X_c the corrupt neighbours of u, and recovers both
 *   secrets (so u's input in the clear) iff both reach t, which some split h₁ + h₂ = k − X_c allows iff
 *   X_c + (k − X_c)/2 ≥ t, i.e. X_c ≥ 2t − k (§4: corrupt neighbours plus half the honest ones stay below t). With no
 *   corrupt device this is t > k/2. The condition asked of the graph: union bound over the n devices,
 *   n · P[X_c ≥ 2t − k] ≤ 2^−σ, X_c ~ HG(n − 1, C, k), σ = 40 by default.
 * - Correctness: up to δ·n devices drop (the issue asks δ = 1/3), independently of the random graph labelling. A
 *   device's dropped neighbours then follow the same law, and the round fails only when some device keeps fewer than
 *   t live neighbours: union bound n · P[X_d > k − t] ≤ 2^−η, X_d ~ HG(n − 1, ⌊δn⌋, k).
 * For each even k the smallest t that meets privacy is taken, and the smallest k whose t also meets correctness is
 * chosen; when it reaches n − 1 the graph is complete and the protocol is the original SecAgg (Bonawitz et al., CCS
 * 2017), where X_c = C exactly. When even the complete graph fails, the round cannot run (RangeError): C corrupt
 * devices need 2t − k > C while δn dropouts need t ≤ k − δn, so n − 1 − 2⌊δn⌋ > C. At δ = 1/3 the savings start above
 * about 150 devices (n = 100 → k = 68, n = 300 → k ≈ 166), and grow as O(log n) after that, which is why SecAgg+ and
 * not SecAgg.
 *
 * These are the exact minima for an even k at δ = 1/3, η = 30, no corrupt device. At n = 100, k = 68 is forced with
 * no slack: t > k/2 leaves k − t = k/2 − 1 dropped neighbours to tolerate and 33 may drop, so k = 68 survives any
 * dropouts, while k = 66 fails with n·P = 2^−18.1. At n = 300, k = 164 gives 2^−28.9 and k = 166 gives 2^−30.1. A
 * Harary graph of odd degree (n even) would keep the same slack with one neighbour fewer (67, 165). What moves k is
 * the dropout fraction, not η: η = 20 gives 68 and 146; δ = 0.1 gives 22 and 38; δ = 0.05 gives 12 and 24 (n = 100
 * and 300). A corrupt fraction γ (C = ⌊γn⌋) raises t above k/2 by about the corrupt neighbours' upper tail, and k
 * with it so that k − t still covers the dropouts; docs/PRIVACY.md tabulates k and t for γ = 0, 0.05, 0.1. A device's
 * SecAgg+ time is about k times a per-neighbour cost set by WebCrypto (bench/secagg-attribution.ts).
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
  /**
   * C: the most devices of the roster that may collude with the server (a round's `corrupt_devices`). Give this or
   * `corruptFraction`. @default 0
   */
  corruptDevices?: number;
  /** γ ∈ [0, 1/3): the fraction of the roster that may collude with the server, C = ⌊γn⌋ (Bell et al.'s γ). */
  corruptFraction?: number;
  /** σ: some device's secrets both reach the server with probability at most 2^−σ over the graph. @default 40 */
  securityBits?: number;
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
  const securityBits = options.securityBits ?? 40;
  if (!Number.isInteger(devices) || devices < 3 || devices > 0xffff) {
    throw new RangeError(`secure aggregation needs 3 to 65535 devices, got ${devices}`);
  }
  if (!(dropoutFraction >= 0 && dropoutFraction < 0.5)) throw new RangeError("dropoutFraction must be in [0, 0.5)");
  if (!(failureBits > 0)) throw new RangeError("failureBits must be positive");
  if (!(securityBits > 0)) throw new RangeError("securityBits must be positive");
  modulusMask(bits);
  if (!Number.isInteger(length) || length < 1) throw new RangeError(`length must be a positive integer, got ${length}`);
  const corrupt = corruptCount(devices, options);
  const dropped = Math.floor(dropoutFraction * devices);
  const failureBudget = 2 ** -failureBits;
  const privacyBudget = 2 ** -securityBits;
  const chosen = (k: number, t: number): SecAggParameters => ({
    devices,
    neighbours: k,
    threshold: t,
    minSurvivors: devices - dropped,
    bits,
    length,
  });
  for (let k = 2; k < devices - 1; k += 2) {
    const t = smallestPrivateThreshold(devices, corrupt, k, privacyBudget);
    if (t > k) continue;
    if (
      k - t < Math.min(dropped, k) &&
      devices * hypergeometricUpperTail(devices - 1, dropped, k, k - t + 1) > failureBudget
    )
      continue;
    return chosen(k, t);
  }
  // The complete graph: every device neighbours all C corrupt ones and all ⌊δn⌋ dropped ones.
  const k = devices - 1;
  const t = Math.floor((k + corrupt) / 2) + 1;
  if (k - t < dropped) {
    const which =
      corrupt > 0 ? (options.corruptDevices !== undefined ? "corruptDevices" : "corruptFraction") : "dropoutFraction";
    throw new RangeError(
      `${which}: ${devices} devices cannot survive ${dropped} dropouts with ${corrupt} corrupt devices (t = ${t} > k − ${dropped})`,
    );
  }
  return chosen(k, t);
}

/** C from the options: an absolute count, or ⌊γn⌋. */
function corruptCount(devices: number, options: ChooseParametersOptions): number {
  const { corruptDevices, corruptFraction } = options;
  if (corruptDevices !== undefined && corruptFraction !== undefined) {
    throw new RangeError("corruptDevices and corruptFraction: give one, not both");
  }
  if (corruptDevices !== undefined) {
    if (!Number.isInteger(corruptDevices) || corruptDevices < 0 || corruptDevices >= devices) {
      throw new RangeError(`corruptDevices must be an integer in [0, n) for n = ${devices}, got ${corruptDevices}`);
    }
    return corruptDevices;
  }
  if (corruptFraction === undefined) return 0;
  if (!(corruptFraction >= 0 && corruptFraction < 1 / 3)) throw new RangeError("corruptFraction must be in [0, 1/3)");
  return Math.floor(corruptFraction * devices);
}

/**
 * The smallest t > k/2 with n · P[X_c ≥ 2t − k] ≤ budget, X_c ~ HG(n − 1, C, k): the corrupt neighbours plus half the
 * honest ones stay below t. May exceed k (then no t works for this k).
 */
export function smallestPrivateThreshold(devices: number, corrupt: number, neighbours: number, budget: number): number {
  let t = Math.floor(neighbours / 2) + 1; // the smallest integer t > k/2, for odd k (the complete graph) too
  while (
    t <= neighbours &&
    devices * hypergeometricUpperTail(devices - 1, corrupt, neighbours, 2 * t - neighbours) > budget
  ) {
    t++;
  }
  return t;
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
