import { describe, expect, it } from "vitest";
import {
  distributedAddRemoveDirections,
  distributedAddRemoveFloor,
  distributedAddRemoveRdp,
  distributedL1Bound,
  distributedRdp,
  distributedStepRdp,
  distributedSubsampledRdp,
  distributedTau,
} from "./distributed-discrete-gaussian.ts";
import { isotropicGaussianRenyi } from "./gaussian-renyi.ts";
import { rdpOfStep } from "./rdp.ts";

function logSumExp(xs: number[]): number {
  const m = Math.max(...xs);
  if (m === Number.NEGATIVE_INFINITY) return m;
  return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
}

/** log-pmf of the sum of n independent N_Z(0, σ²) on [−L, L] (index z + L), by exact convolution in log space. */
function logPmfOfSum(n: number, sigma2: number, L: number): number[] {
  const one = Array.from({ length: 2 * L + 1 }, (_, i) => -((i - L) ** 2) / (2 * sigma2));
  const norm = logSumExp(one);
  const base = one.map((x) => x - norm);
  let cur = base;
  for (let k = 1; k < n; k++) {
    const next: number[] = [];
    for (let z = -L; z <= L; z++) {
      const terms: number[] = [];
      for (let a = -L; a <= L; a++) {
        const b = z - a;
        if (b < -L || b > L) continue;
        terms.push(cur[a + L]! + base[b + L]!);
      }
      next.push(logSumExp(terms));
    }
    cur = next;
  }
  return cur;
}

/** D_α(P ‖ P(· − Δ)) from the exact log-pmf (P symmetric, so this is also D_α(P(· − Δ) ‖ P)). */
function exactRenyi(logP: number[], L: number, shift: number, alpha: number): number {
  const terms: number[] = [];
  for (let z = -L + shift; z <= L - shift; z++) {
    const p = logP[z + L]!;
    const q = logP[z - shift + L]!;
    terms.push(alpha * p + (1 - alpha) * q);
  }
  return logSumExp(terms) / (alpha - 1);
}

describe("the distributed discrete Gaussian's RDP (KLS21 Thm. 1 + Prop. 14)", () => {
  it("τ is 10·Σ_{k<n} exp(−2π²σ²k/(k+1)), recomputed term by term", () => {
    expect(distributedTau(1, 0.3)).toBe(0);
    expect(distributedTau(2, 0.3)).toBeCloseTo(10 * Math.exp(-Math.PI * Math.PI * 0.3), 14);
    const direct = 10 * (Math.exp(-2 * Math.PI ** 2 * 0.5 * 0.5) + Math.exp(-2 * Math.PI ** 2 * 0.5 * (2 / 3)));
    expect(distributedTau(3, 0.5)).toBeCloseTo(direct, 14);
    expect(distributedTau(1000, 100)).toBe(0); // exp(−1000π²) underflows: large shares are exactly Gaussian here
  });

  it("bounds the exact Rényi divergence of a sum of small discrete Gaussians, where the Gaussian formula alone fails", () => {
    const L = 60;
    let gaussianFormulaFailed = false;
    for (const [n, sigma2] of [
      [2, 0.25],
      [3, 0.3],
      [4, 0.5],
    ] as const) {
      const logP = logPmfOfSum(n, sigma2, L);
      for (const shift of [1, 2, 3]) {
        for (const alpha of [2, 3, 5, 8, 16]) {
          const exact = exactRenyi(logP, L, shift, alpha);
          const bound = distributedRdp(
            { dimension: 1, clients: n, localVariance: sigma2, sensitivityBound: shift * shift },
            alpha,
          );
          expect(bound).toBeGreaterThanOrEqual(exact);
          if (exact > (alpha * shift * shift) / (2 * n * sigma2)) gaussianFormulaFailed = true;
        }
      }
    }
    // The τ term is needed: for some small-σ sum the continuous-Gaussian value α·Δ²/(2nσ²) is below the truth.
    expect(gaussianFormulaFailed).toBe(true);
  });

  it("which neighbour: the charge (n − 1 shares) bounds zero-out; with the device's own share leaving, no share count does", () => {
    // A released sum of n inputs: the protected device's shift Δ plus n shares (its own included). Zero-out (the
    // device's data replaced by zero, its share still sent) compares Δ + S_n with S_n; strict add/remove (the device
    // and its share gone) compares Δ + S_n with S_(n−1).
    const L = 80;
    let strictBeatsOld = false;
    let strictBeatsCharged = false;
    for (const [n, sigma2] of [
      [3, 1],
      [4, 1],
      [6, 2],
    ] as const) {
      const withDevice = logPmfOfSum(n, sigma2, L);
      const without = logPmfOfSum(n - 1, sigma2, L);
      for (const shift of [1, 2]) {
        for (const alpha of [1.5, 2, 3]) {
          const shares = (clients: number) =>
            distributedRdp({ dimension: 1, clients, localVariance: sigma2, sensitivityBound: shift * shift }, alpha);
          expect(shares(n - 1)).toBeGreaterThanOrEqual(exactRenyi(withDevice, L, shift, alpha));
          // D_α(Δ + S_n ‖ S_(n−1)): the variance differs too, so even the charged bound can fall short
          const terms: number[] = [];
          for (let z = -L + shift; z <= L; z++) {
            terms.push(alpha * withDevice[z - shift + L]! + (1 - alpha) * without[z + L]!);
          }
          const strict = logSumExp(terms) / (alpha - 1);
          if (strict > shares(n)) strictBeatsOld = true;
          if (strict > shares(n - 1)) strictBeatsCharged = true;
        }
      }
    }
    // Strict add/remove exceeds the bound with the removed device's share counted, and the charged one too: a share
    // count cannot bound it (the variance of the sum reveals the extra share; docs/PRIVACY.md "Which neighbour").
    expect(strictBeatsOld).toBe(true);
    expect(strictBeatsCharged).toBe(true);
  });

  it("equals the Gaussian's α/(2z²) when τ vanishes, z² = nσ_l²/B", () => {
    const p = { dimension: 4096, clients: 100, localVariance: 1e4, sensitivityBound: 1e6 };
    const z2 = (100 * 1e4) / 1e6;
    for (const a of [2, 7, 64]) expect(distributedRdp(p, a)).toBeCloseTo(a / (2 * z2), 12);
    expect(distributedRdp(p, 6.5)).toBeCloseTo(6.5 / (2 * z2), 12); // Prop. 14 holds at real orders too
    expect(distributedSubsampledRdp(0.1, p, [6.5])[0]).toBe(distributedSubsampledRdp(0.1, p, [7])[0]); // q < 1: ⌈α⌉
    expect(distributedL1Bound(4096, 1e6)).toBe(64_000);
    expect(distributedL1Bound(4096, 9)).toBe(9);
  });

  it("the add/remove charge bounds the exact divergence of the strict pair, both ways, where the mean shift alone fails", () => {
    // With the device: Δ + S_(g+1); without it: S_g (its share leaves too). Exact pmfs by convolution.
    const L = 80;
    let meanShiftOnlyFails = false;
    for (const [g, sigma2] of [
      [2, 1],
      [3, 1],
      [5, 2],
    ] as const) {
      const withDevice = logPmfOfSum(g + 1, sigma2, L);
      const without = logPmfOfSum(g, sigma2, L);
      for (const shift of [0, 1, 2]) {
        for (const alpha of [1.5, 2, 2.5, g + 0.5]) {
          const present: number[] = [];
          const absent: number[] = [];
          for (let z = -L + shift; z <= L; z++) {
            const p1 = withDevice[z - shift + L]!;
            const p0 = without[z + L]!;
            present.push(alpha * p1 + (1 - alpha) * p0);
            absent.push(alpha * p0 + (1 - alpha) * p1);
          }
          const p = { dimension: 1, clients: g, localVariance: sigma2, sensitivityBound: Math.max(1, shift * shift) };
          const bound = distributedAddRemoveDirections(p, alpha);
          expect(bound.present).toBeGreaterThanOrEqual(logSumExp(present) / (alpha - 1));
          expect(bound.absent).toBeGreaterThanOrEqual(logSumExp(absent) / (alpha - 1));
          if (logSumExp(present) / (alpha - 1) > distributedRdp({ ...p, clients: g + 1 }, alpha))
            meanShiftOnlyFails = true;
        }
      }
      // from α = g + 1 on, D_α(with ‖ without) is infinite
      expect(
        distributedAddRemoveRdp({ dimension: 1, clients: g, localVariance: sigma2, sensitivityBound: 1 }, g + 1),
      ).toBe(Number.POSITIVE_INFINITY);
    }
    expect(meanShiftOnlyFails).toBe(true);
  });

  it("the variance term is in the charge: d'·(the variance floor) on top of the mean shift, at the demo's d' and g", () => {
    const p = { dimension: 8192, clients: 159, localVariance: 8e6, sensitivityBound: 6e7 };
    for (const alpha of [2, 8, 32]) {
      const meanOnly =
        isotropicGaussianRenyi(
          { dimension: 1, meanDistanceSquared: p.sensitivityBound, variance1: 160 * 8e6, variance2: 159 * 8e6 },
          alpha,
        ) -
        isotropicGaussianRenyi(
          { dimension: 1, meanDistanceSquared: 0, variance1: 160 * 8e6, variance2: 159 * 8e6 },
          alpha,
        );
      const floor = distributedAddRemoveFloor(8192, 159, alpha);
      expect(floor).toBeGreaterThan(0.9 * ((alpha * 8192) / (4 * 159 * 159))); // ≈ α·d'/(4g²)
      expect(distributedAddRemoveRdp(p, alpha)).toBeGreaterThanOrEqual(floor + meanOnly * (1 - 1e-12));
      // the old zero-out bound for g shares sits far below: dropping the variance term loses most of the charge
      expect(distributedAddRemoveRdp(p, alpha)).toBeGreaterThan(distributedRdp(p, alpha) + 0.9 * floor);
    }
    expect(distributedStepRdp({ ...p, adjacency: "zero-out" }, 4)).toBe(distributedRdp({ ...p, clients: 160 }, 4));
  });

  it("the subsampled add/remove bound is Zhu & Wang's over the strict curve, infinite from ⌈α⌉ ≥ g + 1", () => {
    const p = { dimension: 1, clients: 1000, localVariance: 1e4, sensitivityBound: 1e6 }; // z = √10, τ = 0
    const z = Math.sqrt(10);
    const orders = [2, 3, 4, 8, 16, 32, 64];
    for (const q of [0.001, 0.01, 0.1, 0.5]) {
      const sampled = distributedSubsampledRdp(q, p, orders);
      orders.forEach((a, k) => {
        expect(sampled[k]).toBeGreaterThanOrEqual(rdpOfStep(q, z, a) * (1 - 1e-9));
        expect(sampled[k]).toBeLessThanOrEqual(distributedAddRemoveRdp(p, a));
      });
    }
    expect(Array.from(distributedSubsampledRdp(1, p, orders))).toEqual(
      orders.map((a) => distributedAddRemoveRdp(p, a)),
    );
    const few = { ...p, clients: 5 };
    const curve = distributedSubsampledRdp(0.1, few, [4.5, 5, 5.5, 6]);
    expect(Number.isFinite(curve[1]!)).toBe(true);
    // ⌈5.5⌉ = 6 = g + 1: no amplification there, only the unsampled value; at 6 nothing is finite
    expect(curve[2]).toBe(distributedAddRemoveRdp(few, 5.5));
    expect(curve[3]).toBe(Number.POSITIVE_INFINITY);
    expect(() => distributedSubsampledRdp(0.1, { ...p, adjacency: "zero-out" }, orders)).toThrow(/zero-out/);
  });

  it("a checked-in cohort: the subsampled bound over g + 1 shares bounds the exact mixture divergence, both ways", () => {
    // Every checked-in device adds its share; the coin (q) decides whether its shift Δ goes in. Given the others, the
    // sum with the device is (1 − q)·S_n + q·(Δ + S_n), without it (zero-out) S_n, where S_n holds its share too.
    const L = 80;
    for (const [g, sigma2] of [
      [2, 1],
      [4, 1],
      [6, 2],
    ] as const) {
      const shares = logPmfOfSum(g + 1, sigma2, L);
      for (const shift of [1, 2]) {
        const p = {
          dimension: 1,
          clients: g,
          localVariance: sigma2,
          sensitivityBound: shift * shift,
          cohort: "checked-in" as const,
        };
        for (const q of [0.1, 0.5]) {
          const mixed = shares.map((_, i) => {
            const shifted = i - shift >= 0 ? shares[i - shift]! : Number.NEGATIVE_INFINITY;
            return logSumExp([Math.log(1 - q) + shares[i]!, Math.log(q) + shifted]);
          });
          const orders = [2, 3, 4];
          const bound = distributedSubsampledRdp(q, p, orders);
          orders.forEach((alpha, k) => {
            const withOver = shares.map((x, i) => alpha * mixed[i]! + (1 - alpha) * x);
            const withoutOver = shares.map((x, i) => alpha * x + (1 - alpha) * mixed[i]!);
            expect(bound[k]).toBeGreaterThanOrEqual(logSumExp(withOver) / (alpha - 1));
            expect(bound[k]).toBeGreaterThanOrEqual(logSumExp(withoutOver) / (alpha - 1));
            // and it is the zero-out step for g + 1 shares, amplified: below the unsampled charge
            expect(bound[k]).toBeLessThanOrEqual(distributedRdp({ ...p, clients: g + 1 }, alpha));
          });
        }
      }
    }
  });

  it("a checked-in cohort is charged at least the sampled Gaussian of the same z when τ vanishes, below add/remove", () => {
    // g + 1 = 1000 shares of σ_l² = 1e4 with B = 1e6: z = √10, τ = 0, at the in-process demo's d'.
    const p = { dimension: 8192, clients: 999, localVariance: 1e4, sensitivityBound: 1e6 };
    const covered = { ...p, cohort: "checked-in" as const };
    const z = Math.sqrt(10);
    const orders = [2, 4, 8, 16, 32];
    for (const q of [0.01, 0.1, 0.5, 0.95]) {
      const charge = distributedSubsampledRdp(q, covered, orders);
      const addRemove = distributedSubsampledRdp(q, p, orders);
      orders.forEach((a, k) => {
        const gaussian = rdpOfStep(q, z, a); // Mironov, Talwar, Zhang 2019: exact for the sampled Gaussian
        expect(charge[k]).toBeGreaterThanOrEqual(gaussian * (1 - 1e-9));
        // Zhu & Wang's bound holds for any base curve, so it is looser than Mironov's exact Gaussian (up to ~4× at
        // mid orders for q = 0.1 here); near q = 1 it is within 10 %.
        if (q === 0.95) expect(charge[k]).toBeLessThanOrEqual(gaussian * 1.1);
        expect(charge[k]).toBeLessThanOrEqual(distributedRdp({ ...p, clients: 1000 }, a));
        // the variance floor d'·α/(4g²) is gone: the add/remove charge of the same shares is larger
        expect(addRemove[k]).toBeGreaterThan(charge[k]!);
      });
    }
    expect(distributedStepRdp(covered, 4)).toBe(distributedRdp({ ...p, clients: 1000 }, 4));
    expect(() => distributedSubsampledRdp(0.1, { ...covered, adjacency: "add-remove" }, orders)).toThrow(/zero-out/);
    expect(() => distributedSubsampledRdp(0.1, { ...p, cohort: "everyone" as never }, orders)).toThrow(/cohort/);
  });

  it("refuses parameters outside the theorem", () => {
    const ok = { dimension: 4, clients: 2, localVariance: 1, sensitivityBound: 4 };
    expect(() => distributedRdp({ ...ok, localVariance: 0.2 }, 2)).toThrow(/1\/4/);
    expect(() => distributedRdp({ ...ok, clients: 0 }, 2)).toThrow(RangeError);
    expect(() => distributedRdp({ ...ok, sensitivityBound: 1.5 }, 2)).toThrow(RangeError);
    expect(() => distributedRdp(ok, 1)).toThrow(RangeError);
    expect(() => distributedSubsampledRdp(0, ok, [2])).toThrow(RangeError);
  });
});
