/**
 * @module
 * @fedge/privacy: Differential-privacy math of fedge: RDP and PLD accountants, the analytic Gaussian mechanism, the noise-multiplier solver, the privacy ledger, adaptive clipping, the exact discrete Gaussian sum for central mode, local-mode epsilon, the noise samplers (continuous and exact discrete Gaussian) and the one-shot empirical privacy audit (canaries, ε̂ of two fitted Gaussians). Pure: runs in Node, workerd and the browser.
 */
export * from "./gaussian-mechanism/special.ts";
export * from "./gaussian-mechanism/analytic-gaussian.ts";
export * from "./samplers/random.ts";
export * from "./samplers/discrete-gaussian.ts";
export * from "./accountant/accountant.ts";
export * from "./accountant/rdp.ts";
export * from "./accountant/pld.ts";
export * from "./accountant/registry.ts";
export * from "./accountant/noise-multiplier.ts";
export * from "./accountant/analysis/rdp.ts";
export * from "./accountant/analysis/pld.ts";
export * from "./accountant/analysis/fft.ts";
export * from "./ledger.ts";
export * from "./adaptive-clipping.ts";
export * from "./discrete-sum.ts";
export * from "./local-epsilon.ts";
export * from "./local-noise.ts";
export * from "./audit/gaussian-pair-epsilon.ts";
export * from "./audit/one-shot-estimate.ts";
export * from "./audit/canary.ts";
export * from "./samplers/chacha20.ts";
export * from "./accountant/analysis/gaussian-renyi.ts";
export * from "./accountant/analysis/poisson-subsampled-rdp.ts";
export * from "./accountant/analysis/distributed-discrete-gaussian.ts";
export * from "./distributed/rotation.ts";
export * from "./distributed/rounding.ts";
export * from "./distributed/modular.ts";
export * from "./distributed/plan.ts";
export * from "./distributed/encode.ts";
export * from "./distributed/decode.ts";
export * from "./distributed/noise-multiplier.ts";
