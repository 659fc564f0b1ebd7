/**
 * @module
 * The two ε a distributed run states, and what each protects against (docs/PRIVACY.md, "Which neighbour"), as report
 * lines: a pure function of the run's numbers, for any report that shows a distributed run (the in-process
 * comparison, the served run).
 *
 * - ε (the ledger's): against whoever sees only the released models, amplified by the rounds' Poisson sampling (Zhu &
 *   Wang 2019's general bound). A checked-in cohort (every checked-in device adds its share) is charged for zero-out
 *   neighbours, the device's update in or out of a sum and its share in both (Kairouz, McMahan, Song, Thakkar,
 *   Thakurta, Xu 2021, arXiv 2103.00039); a sampled one for add/remove neighbours, the device and its noise share
 *   absent from a sum.
 * - ε against the edge: the edge flips the coins and sees who takes part in secure aggregation, so no sampling
 *   amplifies against it; a device in every round, zero-out neighbours (its update replaced by 0, its own share in
 *   both sums). null: some round gave the edge no bound (a central round's clipped update).
 */

/** A distributed run's privacy numbers (the population's ledger, at its δ). */
export interface DistributedEpsilons {
  /** ε against whoever sees only the released models (the ledger's, as charged). */
  epsilon: number;
  /** ε against the edge for a device in every round; null without a bound. */
  epsilonAgainstEdge: number | null;
  delta: number;
  /** Who added noise shares (what the ε is charged for). @default "checked-in" */
  cohort?: "checked-in" | "sampled";
}

/** The report's paragraph for {@link DistributedEpsilons} (no blank lines around it): both numbers and whom each protects against. */
export function distributedEpsilonLines(e: DistributedEpsilons): string[] {
  const edge =
    e.epsilonAgainstEdge === null
      ? "no bound (a round let the edge see a clipped update)"
      : `ε = ${e.epsilonAgainstEdge.toFixed(3)}`;
  return [
    `Distributed mode's privacy, at δ = ${e.delta.toExponential()}: **ε = ${e.epsilon.toFixed(3)} against whoever sees ` +
      `only the released models** (` +
      ((e.cohort ?? "checked-in") === "checked-in"
        ? `a device's update in or out of each sum, its noise share in both since every checked-in device adds one, `
        : `a device and its noise share in or out of each sum, `) +
      `amplified by the Poisson sampling of devices); **${edge} against the edge itself**, which flips the coins and sees who takes part, so ` +
      `sampling does not hide participation from it (each round at q = 1, the device's update replaced by zero, its own ` +
      `noise share in both sums; a device in every round).`,
  ];
}
