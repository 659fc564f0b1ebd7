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

/**
 * What a distributed round's receipt (`distributed_noise`) or the edge's record of the device is charged for: the honest
 * discrete Gaussian shares besides the device's own (`noise_shares − 1 − corrupt_devices`), the accountant's input
 * for the add/remove charge and the ε against the edge (`client.privacy()` runs both over the receipts).
 */
export { distributedSharesOf, type DistributedNoiseShares } from "@fedge/privacy";
