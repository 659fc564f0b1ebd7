/**
 * @module
 * The operator's side of a distributed round's SecAgg+ on the edge (`/v1/admin/rounds/:id/secagg`): the edge's
 * SecAggRound moves to the next stage only when told to, so the aggregator closes each stage once every device still
 * in the round has answered it, or once no new answer came for `quietMs` (a device that stays silent has dropped), or
 * at `stageTimeoutMs`. The last close (after unmask) finishes the round; a close below the round's threshold aborts it
 * (409 `round_closed`), and the edge keeps it charged.
 */
import type { SecAggStatus } from "@fedge/protocol";
import { EdgeAdminError, type EdgeAdminClient } from "./admin-client.ts";

/** Options of {@link driveSecureAggregation}. */
export interface SecureAggregationDriverOptions {
  /** Time between status polls, in ms. @default 200 */
  pollMs?: number;
  /** A stage with answers but none new for this long is closed (its silent devices dropped), in ms. @default 5000 */
  quietMs?: number;
  /** Longest one stage may take, in ms. @default 120000 */
  stageTimeoutMs?: number;
  /** Devices selected for the round, when known: the advertise stage closes once this many answered. */
  selected?: () => Promise<number>;
  log?: (line: string) => void;
}

/** How the round's secure aggregation ended. */
export type SecureAggregationEnd = { finished: true } | { finished: false; reason: string };

const STAGES = ["advertise", "share-keys", "masked-input", "consistency", "unmask"] as const;

/** Drives round `roundId`'s secure aggregation to its end (see the module header). */
export async function driveSecureAggregation(
  admin: EdgeAdminClient,
  roundId: string,
  o: SecureAggregationDriverOptions = {},
): Promise<SecureAggregationEnd> {
  const pollMs = o.pollMs ?? 200;
  const quietMs = o.quietMs ?? 5000;
  const stageTimeoutMs = o.stageTimeoutMs ?? 120_000;
  const sleep = () => new Promise((r) => setTimeout(r, pollMs));
  // Devices still in the round: everyone selected at first, then those that answered the stage before.
  let live: number | undefined;
  for (;;) {
    const status: SecAggStatus = await admin.secureAggregationStatus(roundId);
    const stage = status.stage as string;
    if (stage === "finished") return { finished: true };
    if (stage === "aborted") return { finished: false, reason: "the edge aborted secure aggregation" };
    if (!(STAGES as readonly string[]).includes(stage) && stage !== "not_open") {
      throw new RangeError(`round ${roundId}: unknown secure-aggregation stage ${stage}`);
    }
    const started = Date.now();
    let answered = status.answered ?? 0;
    let lastChange = Date.now();
    for (;;) {
      const expected = live ?? (o.selected ? await o.selected() : undefined);
      if (answered > 0 && expected !== undefined && answered >= expected) break;
      if (answered > 0 && Date.now() - lastChange >= quietMs) break;
      if (Date.now() - started >= stageTimeoutMs) break;
      await sleep();
      const now = await admin.secureAggregationStatus(roundId);
      if (now.stage !== status.stage) break; // moved on (another operator)
      if ((now.answered ?? 0) !== answered) {
        answered = now.answered ?? 0;
        lastChange = Date.now();
      }
    }
    if (stage === "not_open") {
      if (Date.now() - started >= stageTimeoutMs) return { finished: false, reason: "no device advertised keys" };
      continue;
    }
    o.log?.(`secure aggregation of ${roundId}: closing ${stage} with ${answered} answers`);
    try {
      await admin.closeSecureAggregationStage(roundId);
    } catch (e) {
      if (e instanceof EdgeAdminError && e.status === 409) return { finished: false, reason: e.message };
      throw e;
    }
    live = answered;
  }
}
