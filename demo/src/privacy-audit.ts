/**
 * @module
 * `npm run demo -- --audit`: the one-shot empirical privacy audit (Andrew et al. 2024, arXiv 2302.03098) of the served
 * population, through the same local edge, with `fedge audit`'s code (`runEdgeAudit`): a never-served shadow
 * `mnist-dp-audit-demo` gets the population's current model, config and budget, canary devices (their own API key)
 * are sampled by the edge's coin through the population's rounds, and ε̂ with its bootstrap interval is reported next
 * to the ε the shadow's ledger charged. The population's published model and ledger are never touched.
 */
import type { Backend } from "@fedge/gpu-node";
import { runEdgeAudit } from "fedge";
import type { EdgeAdminClient } from "fedge/edge";
import type { SigningKey } from "fedge/export";
import { populationConfig, type FederatedRecipe } from "./setting.ts";

/** What the demo report shows of the audit. */
export interface PrivacyAuditReport {
  shadow: string;
  auditOf: string;
  rounds: number;
  canaries: number;
  /** ε the shadow's ledger on the edge charged (the accountant's), at `delta`. */
  epsilon: number | null;
  delta: number;
  /** ε̂ of the one-shot audit and its percentile bootstrap interval over canaries. */
  epsilonHat: number;
  interval: { lower: number; upper: number; confidence: number; resamples: number };
  /** Gaussians fitted to the cosines with the inserted and the never-inserted canaries. */
  observed: { mean: number; std: number };
  unobserved: { mean: number; std: number };
  seconds: number;
}

export async function runPrivacyAudit(
  ctx: {
    operator: EdgeAdminClient;
    signingKey: SigningKey;
    backend: Backend;
    log: (line: string) => void;
  },
  o: { population: string; clients: number; epsilon: number; delta: number; recipe: FederatedRecipe; canaries: number },
): Promise<PrivacyAuditReport> {
  const t0 = performance.now();
  const { config } = populationConfig({
    name: o.population,
    clients: o.clients,
    epsilon: o.epsilon,
    delta: o.delta,
    recipe: o.recipe,
  });
  // The canaries are devices of their own app key: the fleet's key has a quota of exactly the fleet.
  const key = await ctx.operator.createApiKey("fedge demo audit canaries", 1_000_000);
  await ctx.operator.setDeviceQuota(key.id, o.canaries);
  const result = await runEdgeAudit({
    admin: ctx.operator,
    apiKey: key.key,
    config,
    id: "demo",
    backend: ctx.backend,
    signingKey: ctx.signingKey,
    rounds: o.recipe.rounds,
    canaries: o.canaries,
    log: (line) => ctx.log(`[audit] ${line}`),
  });
  const e = result.estimate;
  ctx.log(
    `[audit] ${result.shadow.name}: ε̂ = ${e.epsilon.toFixed(3)} [${e.interval.lower.toFixed(3)}, ${e.interval.upper.toFixed(3)}] ` +
      `vs the ledger's ε = ${result.epsilon?.toFixed(3) ?? "–"} (δ = ${result.delta})`,
  );
  return {
    shadow: result.shadow.name,
    auditOf: result.shadow.audit_of,
    rounds: result.rounds.length,
    canaries: o.canaries,
    epsilon: result.epsilon,
    delta: result.delta,
    epsilonHat: e.epsilon,
    interval: e.interval,
    observed: { mean: e.observed.mean, std: e.observed.std },
    unobserved: { mean: e.unobserved.mean, std: e.unobserved.std },
    seconds: (performance.now() - t0) / 1000,
  };
}
