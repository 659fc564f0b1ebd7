/**
 * @module
 * `fedge audit`: the one-shot empirical privacy audit of a population through the edge (`audit/edge-audit.ts`):
 * a never-served shadow population, k canary devices sampled by the edge's Poisson coin, T rounds of the population's
 * mechanism, then ε̂ with its interval next to the ε the shadow's ledger charged. One JSON line per round and a final
 * `{"type":"audit"}` line on stdout; progress on stderr.
 */
import { createBackend } from "@fedge/gpu-node";
import { AuditId } from "@fedge/protocol";
import { POPULATION_CONFIG_FLAGS } from "../../config.ts";
import { runEdgeAudit } from "../../audit/edge-audit.ts";
import { UsageError, parseFlags, type Command } from "../command.ts";
import {
  ADMIN_TOKEN_SYNOPSIS,
  EDGE_FLAGS,
  EDGE_HELP,
  adminTokenOf,
  apiKeyOf,
  backendOf,
  edgeUrl,
  edgeUsageHeader,
  intFlag,
  readConfigFile,
  resolveConfig,
  signingKeyOf,
  withEdge,
  type FlagValues,
} from "./edge-options.ts";
import { EdgeAdminClient } from "../../edge/admin-client.ts";

const USAGE = `${edgeUsageHeader(
  "audit",
  "[--config FILE] --signing-key FILE [--id ID] [--rounds T] [--canaries K]",
  `${ADMIN_TOKEN_SYNOPSIS} [env FEDGE_API_KEY | --api-key-file FILE]`,
  "[population options]",
)}
Estimates the ε of a population's training empirically, with the one-shot audit of Andrew et al., "One-shot
Empirical Privacy Estimation for Federated Learning" (ICLR 2024, arXiv 2302.03098):
  1. creates the audit shadow NAME-audit-ID on the edge: a copy of NAME's serving model that the edge never serves
     (it refuses to promote any of its versions), with the population's budget on its own ledger; NAME itself, its
     published model and its ledger are never touched;
  2. registers K canary devices under the app's API key; each round the edge's Poisson coin (the population's q)
     decides which take part, and a selected canary uploads a random unit direction (crypto.getRandomValues) scaled to
     the round's clip norm, built, clipped and signed like a device's update; K' more directions are never inserted;
  3. runs T rounds of the population's mechanism on the shadow (the edge charges each round; the aggregator
     re-verifies, clips, adds its noise, uploads each version unpromoted);
  4. fits a Gaussian to the cosines of (final − initial model) with the inserted canaries and one to those with the
     never-inserted ones, and reports ε̂ = the ε of telling the two apart at the budget's δ, with a percentile
     bootstrap interval over canaries, next to the ε the ledger charged.
ε̂ is an estimate, not a bound: ε̂ well below the accountant's ε is what a correct mechanism shows; ε̂ above it means
the mechanism leaks more than it claims (missing noise, a wrong clip, a broken sampler). Output: one JSON line per
round, then {"type":"audit", shadow, rounds, epsilon, delta, epsilonHat, interval, observed, unobserved}.
An audit that fails once its shadow exists deletes the shadow again (its rounds, payloads, ledger and versions; the
population is never touched), so the same --id can be run again; if the edge cannot be reached for that, the error
says so and DELETE /v1/admin/populations/NAME/audit-shadows/ID deletes it later. A finished audit keeps its shadow.

Edge:
${EDGE_HELP.edge}
${EDGE_HELP.adminTokenFile("; required: creating a shadow sets a budget")}
${EDGE_HELP.apiKeyFile(" the canaries register under")}
${EDGE_HELP.signingKey("; signs the shadow's manifests")}

Audit:
  --id ID                  the audit's id, lowercase letters and digits, at most 16 (default: random); the shadow is
                           NAME-audit-ID and must not exist yet
  --rounds T               rounds to run on the shadow (default 5)
  --canaries K             canaries inserted (default 100; at least 2)
  --held-canaries K'       canaries never inserted (default K)
  --round-duration-s S     collecting window per round; the canaries report at once, then the round is closed
                           (default 120)
  --confidence P           coverage of the bootstrap interval (default 0.95)
  --resamples B            bootstrap resamples (default 1000)
  --backend B              auto | cpu | webgpu (default: FEDGE_BACKEND or auto)

Population (or --config FILE with the population's JSON config; flags override it; privacy mode central or local):
  --model NAME  --privacy-mode central|local  --noise-multiplier Z  --target-epsilon E  --delta D  --accountant rdp|pld
  --sampling-rate Q  --expected-clients M  --clip-norm C  --adaptive [...]  --optimizer ... [--server-lr η]
  --noise-mechanism discrete-gaussian|gaussian  --trainable all|head  --batch-size K   (as fedge aggregate)
Exit codes: 0 ok, 2 bad arguments, 1 the audit failed (an edge refusal such as budget_exceeded or a taken id,
unreachable edge); see fedge --help. The exit code does not judge ε̂: read epsilonHat against epsilon.
`;

function fraction(values: FlagValues, name: string, fallback: number): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const x = Number(v);
  if (typeof v !== "string" || v.trim() === "" || !(x > 0 && x < 1))
    throw new UsageError(`--${name} must be a number in (0, 1), got "${String(v)}"`);
  return x;
}

function randomId(): string {
  const b = crypto.getRandomValues(new Uint8Array(5));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export const auditCommand: Command = {
  summary: "estimate a population's ε empirically with canaries on a never-served shadow (one-shot audit)",
  usage: USAGE,
  async run(argv, io) {
    const values: FlagValues = parseFlags(argv, {
      ...POPULATION_CONFIG_FLAGS,
      ...EDGE_FLAGS,
      "api-key-file": { type: "string" },
      id: { type: "string" },
      rounds: { type: "string" },
      canaries: { type: "string" },
      "held-canaries": { type: "string" },
      "round-duration-s": { type: "string" },
      confidence: { type: "string" },
      resamples: { type: "string" },
      backend: { type: "string" },
    });
    const log = (line: string) => io.stderr(`${line}\n`);
    const url = edgeUrl(values);
    const rounds = intFlag(values, "rounds", 5, 1);
    const canaries = intFlag(values, "canaries", 100, 2);
    const heldCanaries = intFlag(values, "held-canaries", canaries, 2);
    const roundDurationS = intFlag(values, "round-duration-s", 120, 1);
    const resamples = intFlag(values, "resamples", 1000, 0);
    const confidence = fraction(values, "confidence", 0.95);
    const id = (values.id as string | undefined) ?? randomId();
    if (!AuditId.safeParse(id).success)
      throw new UsageError(`--id must be lowercase letters and digits, at most 16, got "${id}"`);
    const backendName = backendOf(values);
    const base = typeof values.config === "string" ? await readConfigFile(values.config) : {};
    const config = resolveConfig(values, base);
    if (config.privacy.mode === "none")
      throw new UsageError("--privacy-mode none has no ε to audit: audit a central or local population");
    if (values["register-key"]) throw new UsageError("--register-key is not used by fedge audit");
    const token = await adminTokenOf(values);
    if (!token)
      throw new UsageError(
        "creating an audit shadow needs the admin token: set FEDGE_ADMIN_TOKEN or --admin-token-file",
      );
    const apiKey = await apiKeyOf(values);
    return withEdge(url, async () => {
      const signing = await signingKeyOf(values);
      if (!signing) throw new UsageError("give --signing-key FILE: the shadow's manifests are signed with it");
      const admin = new EdgeAdminClient({ baseUrl: url, adminToken: token });
      const backend = await createBackend({ prefer: backendName, log });
      try {
        const result = await runEdgeAudit({
          admin,
          apiKey,
          config,
          id,
          backend,
          signingKey: signing.key,
          rounds,
          canaries,
          heldCanaries,
          roundDurationS,
          confidence,
          resamples,
          onRound: (r) => io.stdout(JSON.stringify(r) + "\n"),
          log,
        });
        const e = result.estimate;
        io.stdout(
          JSON.stringify({
            type: "audit",
            shadow: result.shadow.name,
            auditOf: result.shadow.audit_of,
            rounds: result.rounds.length,
            epsilon: result.epsilon,
            delta: result.delta,
            epsilonHat: e.epsilon,
            interval: e.interval,
            observed: e.observed,
            unobserved: e.unobserved,
          }) + "\n",
        );
        return 0;
      } finally {
        await backend.dispose();
      }
    });
  },
};
