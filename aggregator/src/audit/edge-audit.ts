/**
 * @module
 * `fedge audit` against an edge: the one-shot empirical privacy audit (Andrew et al. 2024, "One-shot Empirical
 * Privacy Estimation for Federated Learning", ICLR 2024, arXiv 2302.03098) of a population, run on an audit shadow so
 * that no canary can reach the population's published model:
 *
 * 1. `POST /v1/admin/populations/{name}/audit-shadows` creates `<name>-audit-<id>`: a copy of the serving model that
 *    the edge never serves, with the audit's own budget (its ε is charged there, never to the population);
 * 2. k canary devices register under the app's API key (`canary-devices.ts`); k' more directions are never inserted;
 * 3. T rounds of the population's config run on the shadow through the {@link EdgeRoundRunner} (the edge's ledger
 *    charges each round, its Poisson coin samples the canaries at check-in, the runner re-verifies, aggregates with
 *    the same DP mechanism and uploads each version unpromoted);
 * 4. ε̂ with its bootstrap interval from the cosines of (final − initial) with both canary sets, next to the ε the
 *    edge's ledger charged for those rounds.
 *
 * An audit that fails once its shadow exists (an edge refusal, a canary that cannot register, an unreachable edge)
 * deletes the shadow again (`DELETE …/audit-shadows/{id}`: its rounds, payloads, ledger and versions) and every canary
 * it registered (`DELETE /v1/admin/devices/{id}`: the device's identity and quota slot), and rethrows, so nothing of
 * it is left and the same id can be run again; a successful audit keeps its shadow and canaries for inspection.
 *
 * The shadow has only the canaries as devices: the most an inserted canary can stand out (other devices' updates
 * only blur it), so ε̂ is measured in the setting where the mechanism's noise alone protects it.
 */
import { estimateEpsilonOneShot, type OneShotAuditEstimate } from "@fedge/privacy";
import { flattenTrainable } from "@fedge/ml";
import type { AuditShadow } from "@fedge/protocol";
import type { Backend } from "@fedge/gpu-node";
import type { PopulationConfig } from "../config.ts";
import type { SigningKey } from "../export.ts";
import { RoundEngine } from "../round.ts";
import type { EdgeAdminClient } from "../edge/admin-client.ts";
import { fetchEdgeModel, fetchPopulationPrivacy } from "../edge/edge-registry.ts";
import { EdgeRoundRunner, type EdgeRunnerRoundResult } from "../edge/runner.ts";
import { edgeRunnerStateOf } from "../edge/runner-state.ts";
import { CanarySet } from "./canaries.ts";
import { CanaryDevices, type CanaryDeletion } from "./canary-devices.ts";

/** Options of {@link runEdgeAudit}. */
export interface EdgeAuditOptions {
  /** Admin client holding the admin token (creating a shadow sets a budget). */
  admin: EdgeAdminClient;
  /** The app API key the canary devices register under. */
  apiKey: string;
  /** The population config to audit (`model` is the production population; its budget becomes the shadow's). */
  config: PopulationConfig;
  /** The audit's id: the shadow is `<model>-audit-<id>`. */
  id: string;
  backend: Backend;
  signingKey: SigningKey;
  rounds: number;
  /** Canaries inserted (k ≥ 2). */
  canaries: number;
  /** Canaries never inserted (k'). @default canaries */
  heldCanaries?: number;
  /** Collecting window of each round (the canaries report at once; the runner then closes it). @default 120 */
  roundDurationS?: number;
  /** @default 0.95 */
  confidence?: number;
  /** @default 1000 */
  resamples?: number;
  /** Requests in flight from the canaries. @default 8 */
  concurrency?: number;
  /** Called after each round. */
  onRound?: (result: EdgeRunnerRoundResult) => void;
  /** Progress lines. @default () => undefined */
  log?: (line: string) => void;
}

export interface EdgeAuditResult {
  shadow: AuditShadow;
  rounds: EdgeRunnerRoundResult[];
  /** ε the shadow's ledger on the edge charged for the rounds that ran, at `delta`. */
  epsilon: number | null;
  delta: number;
  estimate: OneShotAuditEstimate;
}

export async function runEdgeAudit(o: EdgeAuditOptions): Promise<EdgeAuditResult> {
  const log = o.log ?? (() => undefined);
  const budget = o.config.privacy.budget;
  if (o.config.privacy.mode === "none" || !budget)
    throw new RangeError("an audit measures a DP population: privacy mode none has no ε to compare");
  if (!Number.isSafeInteger(o.rounds) || o.rounds < 1)
    throw new RangeError(`rounds must be an integer >= 1, got ${o.rounds}`);
  const baseUrl = o.admin.baseUrl;
  const shadow = await o.admin.createAuditShadow(o.config.model, {
    id: o.id,
    budget: { epsilon: budget.epsilon, delta: budget.delta, accountant: o.config.privacy.accountant },
  });
  log(`audit shadow ${shadow.name}: ${o.config.model} v${shadow.source_version}, budget ε=${budget.epsilon}`);
  let canaries: CanaryDevices | undefined;
  try {
    const config: PopulationConfig = { ...o.config, model: shadow.name };
    const seed = await fetchEdgeModel(baseUrl, shadow.name, shadow.model_version);
    const start = flattenTrainable(seed.params, config.trainable);
    const set = CanarySet.create({
      length: start.length,
      inserted: o.canaries,
      ...(o.heldCanaries !== undefined ? { held: o.heldCanaries } : {}),
    });
    const devices = await CanaryDevices.register(
      {
        baseUrl,
        apiKey: o.apiKey,
        canaries: set,
        ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
      },
      (registered) => (canaries = registered),
    );
    log(
      `registered ${set.count} canary devices: the shadow's only devices, so its rounds get fewer updates than ` +
        `q·N = ${config.expectedClients} (the fixed denominator and the charged ε do not depend on the count)`,
    );
    const engine = await RoundEngine.create({ config, backend: o.backend, initialModel: seed.params, log });
    const results: EdgeRunnerRoundResult[] = [];
    try {
      const runner = new EdgeRoundRunner({
        engine,
        admin: o.admin,
        signingKey: o.signingKey,
        state: edgeRunnerStateOf(config, shadow.model_version, null),
        durationS: o.roundDurationS ?? 120,
        collect: async () => {
          const r = await devices.runRound(shadow.name);
          log(`canaries: ${r.selected} of ${r.checkedIn} selected by the edge's coin`);
        },
        log,
      });
      for (let r = 0; r < o.rounds; r++) {
        const result = await runner.runRound();
        results.push(result);
        o.onRound?.(result);
      }
    } finally {
      engine.dispose();
    }
    const final = flattenTrainable(engine.model, config.trainable);
    const { observed, unobserved } = set.cosines(start, final);
    const ledger = await fetchPopulationPrivacy(baseUrl, shadow.name);
    const estimate = estimateEpsilonOneShot({
      observed,
      unobserved,
      delta: budget.delta,
      ...(o.confidence !== undefined ? { confidence: o.confidence } : {}),
      ...(o.resamples !== undefined ? { resamples: o.resamples } : {}),
    });
    return { shadow, rounds: results, epsilon: ledger.epsilon_spent, delta: budget.delta, estimate };
  } catch (e) {
    // A failed audit leaves no shadow behind (its charged rounds, canary payloads and versions measure nothing now).
    await o.admin.deleteAuditShadow(o.config.model, o.id).then(
      () => log(`audit failed: deleted its shadow ${shadow.name}`),
      (cleanup: unknown) =>
        log(
          `audit failed and its shadow ${shadow.name} could not be deleted (${(cleanup as Error).message}); ` +
            `delete it with DELETE /v1/admin/populations/${o.config.model}/audit-shadows/${o.id}`,
        ),
    );
    // Its canaries too: registered devices hold their API key's quota slots, and nothing will use them again.
    if (canaries && canaries.deviceIds.length > 0) await deleteCanaries(o.admin, canaries, log);
    throw e;
  }
}

/** Deletes a failed audit's canary devices, logging what could not be deleted (the audit's own error is rethrown). */
async function deleteCanaries(admin: EdgeAdminClient, canaries: CanaryDevices, log: (line: string) => void) {
  let result: CanaryDeletion;
  try {
    result = await canaries.deleteAll(admin);
  } catch (e) {
    result = { deleted: 0, failed: canaries.deviceIds.map((deviceId) => ({ deviceId, error: e as Error })) };
  }
  if (result.failed.length === 0) {
    log(`audit failed: deleted its ${result.deleted} canary devices`);
    return;
  }
  const first = result.failed[0]!;
  log(
    `audit failed and ${result.failed.length} of its canary devices could not be deleted (${first.deviceId}: ` +
      `${first.error.message}); delete each with DELETE /v1/admin/devices/{id}: ` +
      result.failed.map((f) => f.deviceId).join(" "),
  );
}
