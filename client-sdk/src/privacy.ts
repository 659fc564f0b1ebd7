/**
 * @module
 * `@fedge/client/privacy`: what one local-mode report costs, for apps that show or check it themselves — the analytic
 * Gaussian ε of a report (Balle & Wang 2018, arXiv 1805.06530, Theorem 8) and the classic bound (Dwork & Roth 2014,
 * Theorem A.1), from @fedge/privacy. A subpath of its own so that the SDK core (`@fedge/client`) does not carry the
 * special functions they need; the client's own privacy checks load them lazily.
 */
export {
  localReportEpsilon,
  classicGaussianEpsilon,
  type LocalEpsilonOptions,
  type Neighbouring,
} from "@fedge/privacy";
