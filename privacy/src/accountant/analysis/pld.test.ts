import { describe, expect, it } from "vitest";
import { gaussianEpsilon } from "../../gaussian-mechanism/analytic-gaussian.ts";
import { convolve, fft } from "./fft.ts";
import {
  chernoffWindow,
  composePmf,
  pmfDelta,
  pmfEpsilon,
  selfComposePmf,
  selfComposePmfs,
  subsampledGaussianDelta,
  subsampledGaussianPmf,
  truncateTails,
  type Pmf,
} from "./pld.ts";
import { computeRdp, DEFAULT_ORDERS, getPrivacySpent } from "./rdp.ts";

const fine = { discretization: 1e-4, tailMass: 1e-15 };

function pldEpsilon(q: number, z: number, steps: number, delta: number, params = fine): number {
  let eps = 0;
  for (const dir of ["remove", "add"] as const) {
    const c = selfComposePmf(subsampledGaussianPmf(q, z, dir, params), steps, params.tailMass);
    eps = Math.max(eps, pmfEpsilon(c, delta, params.discretization));
  }
  return eps;
}

const rdpEpsilon = (q: number, z: number, steps: number, delta: number) =>
  getPrivacySpent(DEFAULT_ORDERS, computeRdp(q, z, steps), delta).epsilon;

describe("FFT", () => {
  it("matches the DFT definition and convolves like the direct sum", () => {
    const n = 16;
    const re = Float64Array.from({ length: n }, (_, i) => Math.sin(i) + 0.1 * i);
    const im = new Float64Array(n);
    const copy = Float64Array.from(re);
    fft(re, im);
    for (let k = 0; k < n; k++) {
      let sr = 0;
      let si = 0;
      for (let j = 0; j < n; j++) {
        sr += copy[j]! * Math.cos((-2 * Math.PI * j * k) / n);
        si += copy[j]! * Math.sin((-2 * Math.PI * j * k) / n);
      }
      expect(re[k]).toBeCloseTo(sr, 10);
      expect(im[k]).toBeCloseTo(si, 10);
    }
    const a = Float64Array.from({ length: 700 }, (_, i) => Math.exp(-i / 50));
    const b = Float64Array.from({ length: 300 }, (_, i) => 1 / (1 + i));
    const { out, errorBound } = convolve(a, b); // 210,000 products > direct limit → FFT path
    let maxErr = 0;
    let l1 = 0;
    for (const k of [0, 1, 299, 500, 998]) {
      let s = 0;
      for (let i = 0; i < a.length; i++) if (k - i >= 0 && k - i < b.length) s += a[i]! * b[k - i]!;
      maxErr = Math.max(maxErr, Math.abs(out[k]! - s));
      l1 += Math.abs(out[k]! - s);
    }
    expect(maxErr).toBeLessThan(1e-12);
    expect(l1).toBeLessThan(errorBound);
  });
});

describe("PLD of the subsampled Gaussian (connect the dots, arXiv 2207.04380)", () => {
  it("single-step PLD is a valid dominating pair: mass 1, Σω e^{−ℓ} ≤ 1, profile ≥ the exact one everywhere", () => {
    const h = 1e-3;
    for (const [q, z] of [
      [0.01, 1],
      [0.3, 0.8],
      [1, 1.5],
    ] as const) {
      for (const dir of ["remove", "add"] as const) {
        const p = subsampledGaussianPmf(q, z, dir, { discretization: h, tailMass: 1e-15 });
        let mass = p.infinityMass;
        let qMass = 0;
        p.probs.forEach((w, i) => {
          mass += w;
          qMass += w * Math.exp(-(p.offset + i) * h);
        });
        expect(Math.abs(mass - 1)).toBeLessThan(1e-12);
        expect(qMass).toBeLessThanOrEqual(1 + 1e-11);
        for (let eps = -0.5; eps < 4; eps += 0.0137) {
          const truth = subsampledGaussianDelta(eps, q, z, dir);
          expect(pmfDelta(p, eps, h)).toBeGreaterThanOrEqual(truth - 1e-12);
        }
      }
    }
  });

  it("q = 1, one step: ε ≥ the exact analytic-Gaussian ε (Balle & Wang 2018 Thm. 8) and within 1e-6 of it", () => {
    for (const z of [0.5, 1, 2]) {
      for (const delta of [1e-5, 1e-3]) {
        const p = subsampledGaussianPmf(1, z, "remove", fine);
        const eps = pmfEpsilon(p, delta, fine.discretization);
        const exact = gaussianEpsilon(delta, z);
        expect(eps).toBeGreaterThanOrEqual(exact);
        expect(eps - exact).toBeLessThan(1e-6);
      }
    }
  });

  it("q = 1, 16 steps: ε ≥ exact (16 Gaussian steps = one with σ/4) and close to it", () => {
    const z = 2;
    const exact = gaussianEpsilon(1e-5, z / 4);
    const eps = pldEpsilon(1, z, 16, 1e-5);
    expect(eps).toBeGreaterThanOrEqual(exact);
    expect(eps - exact).toBeLessThan(2e-3);
  });

  it("is never above RDP: opacus setting (q=0.04, z=1.5, 2250 steps) and the TF MNIST setting", () => {
    const opacus = pldEpsilon(0.04, 1.5, 2250, 1e-5, { discretization: 2e-4, tailMass: 1e-15 });
    expect(opacus).toBeLessThan(rdpEpsilon(0.04, 1.5, 2250, 1e-5));
    expect(opacus).toBeGreaterThan(6.5); // PLD is tighter than RDP's 7.33 but not absurdly
    const tf = pldEpsilon(256 / 60000, 1.1, 14062, 1e-5);
    expect(tf).toBeLessThan(rdpEpsilon(256 / 60000, 1.1, 14062, 1e-5));
    expect(tf).toBeGreaterThan(2.2);
  });

  it("coarser grids are looser but still valid (ε decreases as h shrinks, all ≤ RDP)", () => {
    const e3 = pldEpsilon(0.02, 1, 200, 1e-5, { discretization: 1e-2, tailMass: 1e-15 });
    const e4 = pldEpsilon(0.02, 1, 200, 1e-5, { discretization: 1e-3, tailMass: 1e-15 });
    const e5 = pldEpsilon(0.02, 1, 200, 1e-5, { discretization: 1e-4, tailMass: 1e-15 });
    expect(e3).toBeGreaterThanOrEqual(e4);
    expect(e4).toBeGreaterThanOrEqual(e5 - 1e-9);
    expect(e3).toBeLessThan(rdpEpsilon(0.02, 1, 200, 1e-5));
  });

  it("truncation is pessimistic: δ(ε) never decreases", () => {
    const h = 1e-3;
    const p = subsampledGaussianPmf(0.1, 1, "remove", { discretization: h, tailMass: 1e-15 });
    const t = truncateTails(p, 1e-4);
    expect(t.probs.length).toBeLessThan(p.probs.length);
    for (let eps = -0.2; eps < 3; eps += 0.01) expect(pmfDelta(t, eps, h)).toBeGreaterThanOrEqual(pmfDelta(p, eps, h));
  });

  it("heterogeneous composition: composing two runs equals composing in either order and exceeds each run", () => {
    const params = { discretization: 1e-3, tailMass: 1e-15 };
    const run = (q: number, z: number, n: number, dir: "remove" | "add") =>
      selfComposePmf(subsampledGaussianPmf(q, z, dir, params), n, params.tailMass);
    const a = run(0.05, 1, 30, "remove");
    const b = run(0.2, 2, 10, "remove");
    const ab = composePmf(a, b, params.tailMass);
    const ba = composePmf(b, a, params.tailMass);
    const e = (p: Pmf) => pmfEpsilon(p, 1e-5, params.discretization);
    expect(e(ab)).toBeCloseTo(e(ba), 9);
    expect(e(ab)).toBeGreaterThan(Math.max(e(a), e(b)));
  });

  describe("self-composition by one windowed FFT power (dp_accounting's self_convolve, made pessimistic)", () => {
    const h = 1e-3;
    const tau = 1e-15;
    /** The T-fold composition with no truncation at all: repeated squaring by linear convolution, full support. */
    const untruncated = (p: Pmf, count: number): Pmf => {
      let result: Pmf | null = null;
      let base = p;
      const full = (x: Pmf, y: Pmf): Pmf => ({
        offset: x.offset + y.offset,
        probs: convolve(x.probs, y.probs).out.map((v) => Math.max(0, v)),
        infinityMass: 1 - (1 - x.infinityMass) * (1 - y.infinityMass),
      });
      for (let k = count; ;) {
        if (k & 1) result = result ? full(result, base) : base;
        k >>= 1;
        if (k === 0) break;
        base = full(base, base);
      }
      return result!;
    };

    it.each([
      [0.05, 1.0, 64],
      [0.2, 0.8, 40],
      [1, 2, 32],
    ])(
      "q=%s, z=%s, %s steps: δ(ε) ≥ the untruncated δ(ε) everywhere, ε within 1e-4 of the untruncated ε",
      (q, z, T) => {
        for (const dir of ["remove", "add"] as const) {
          const p = subsampledGaussianPmf(q, z, dir, { discretization: h, tailMass: tau });
          const fast = selfComposePmf(p, T, tau);
          const exact = untruncated(p, T);
          expect(fast.probs.length).toBeLessThan(exact.probs.length); // it did truncate
          for (let eps = -1; eps < 12; eps += 0.05) {
            const d = pmfDelta(fast, eps, h);
            const want = pmfDelta(exact, eps, h);
            expect(d).toBeGreaterThanOrEqual(want - 1e-15);
            expect(d - want).toBeLessThan(1e-8);
          }
          for (const delta of [1e-3, 1e-5, 1e-7]) {
            const e = pmfEpsilon(fast, delta, h);
            const want = pmfEpsilon(exact, delta, h);
            expect(e).toBeGreaterThanOrEqual(want - 1e-12);
            expect(e - want).toBeLessThan(1e-4);
          }
        }
      },
    );

    it("the Chernoff window holds all but τ of the mass on each side (checked against the full composition)", () => {
      const p = subsampledGaussianPmf(0.05, 1, "remove", { discretization: h, tailMass: tau });
      const T = 64;
      const exact = untruncated(p, T);
      // (the reference's own FFT round-off floor is ~1e-14 in total, so smaller τ cannot be checked this way)
      for (const t of [1e-4, 1e-7, 1e-10]) {
        const w = chernoffWindow(p, T, t);
        let below = 0;
        let above = 0;
        exact.probs.forEach((v, i) => {
          const s = exact.offset - T * p.offset + i; // index of the T-fold sum relative to T·offset
          if (s < w.lo) below += v;
          if (s > w.hi) above += v;
        });
        expect(below).toBeLessThanOrEqual(t);
        expect(above).toBeLessThanOrEqual(t);
        expect(w.hi - w.lo).toBeLessThan(exact.probs.length);
      }
    });

    it("composes two PLDs in one transform as one at a time (up to the round-off pads)", () => {
      const params = { discretization: h, tailMass: tau };
      const r = subsampledGaussianPmf(0.1, 1.2, "remove", params);
      const a = subsampledGaussianPmf(0.1, 1.2, "add", params);
      const [pr, pa] = selfComposePmfs([r, a], 500, tau);
      for (const [packed, alone] of [
        [pr!, selfComposePmf(r, 500, tau)],
        [pa!, selfComposePmf(a, 500, tau)],
      ] as const) {
        expect(Math.abs(pmfEpsilon(packed, 1e-5, h) - pmfEpsilon(alone, 1e-5, h))).toBeLessThan(1e-4);
      }
    });
  });

  describe("published numbers (dp_accounting pld_privacy_accountant_test.py)", () => {
    const h = 1e-4;
    /** δ at ε of T steps, both directions. */
    const deltaAt = (q: number, z: number, T: number, eps: number) => {
      let d = 0;
      for (const dir of ["remove", "add"] as const) {
        const p = subsampledGaussianPmf(q, z, dir, { discretization: h, tailMass: 1e-15 });
        d = Math.max(d, pmfDelta(selfComposePmf(p, T, 1e-15), eps, h));
      }
      return d;
    };
    it("test_gaussian_basic: three Gaussian steps with z = √3 → δ(ε = 1) = 0.126936", () => {
      expect(Math.abs(deltaAt(1, Math.sqrt(3), 3, 1) - 0.126936)).toBeLessThan(1e-3);
    });
    it("test_poisson_subsampled_gaussian: three steps with q = 0.2, z = 0.5 → δ(ε = 1) = 0.15594", () => {
      expect(Math.abs(deltaAt(0.2, 0.5, 3, 1) - 0.15594)).toBeLessThan(1e-3);
    });
  });
});
