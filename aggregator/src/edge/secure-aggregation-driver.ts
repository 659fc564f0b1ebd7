/**
 * @module
 * The operator's side of a distributed round's SecAgg+ on the edge (`/v1/admin/rounds/:id/secagg`). Every stage closes
 * on its own deadline, fixed when the round opened and stated in the devices' task: the edge's `SecAggRound` closes it
 * then by its alarm (a device silent until then has dropped). The aggregator only waits for that, or closes the stage
 * early once every device still in the round has answered it (the advertise stage: every device the round selected,
 * or in a checked-in cohort every device that checked in, once check-ins are over),
 * naming the stage it closes so that a close racing the deadline never closes the next one. The last close (after
 * unmask) finishes the round; a close below the round's threshold aborts it (409 `round_closed`), and the edge keeps it
 * charged.
 */
import type { SecAggStatus } from "@fedge/protocol";
import { EdgeAdminError, EdgeClientError, type EdgeAdminClient } from "./admin-client.ts";

/** Options of {@link driveSecureAggregation}. */
export interface SecureAggregationDriverOptions {
  /** Time between status polls, in ms. @default 200 */
  pollMs?: number;
  /**
   * How long past a stage's deadline the edge may still show the stage before the driver gives up (the edge closes
   * overdue stages on every read, so this only guards against a clock or an edge gone wrong), in ms. @default 60000
   */
  graceMs?: number;
  /**
   * Devices that will check in to the round, when the operator knows them (a fleet it runs). Which devices advertise
   * is known only once check-ins are over, so without this the advertise stage always runs to its deadline (the end
   * of collecting); with it, advertise closes early once this many checked in and every selected one advertised.
   * @default undefined (advertise closes at its deadline)
   */
  expectedCheckIns?: number;
  log?: (line: string) => void;
}

/** How the round's secure aggregation ended. */
export type SecureAggregationEnd = { finished: true } | { finished: false; reason: string };

const STAGES = ["advertise", "share-keys", "masked-input", "consistency", "unmask"] as const;
type Stage = (typeof STAGES)[number];

/** Drives round `roundId`'s secure aggregation to its end (see the module header). */
export async function driveSecureAggregation(
  admin: EdgeAdminClient,
  roundId: string,
  o: SecureAggregationDriverOptions = {},
): Promise<SecureAggregationEnd> {
  const pollMs = o.pollMs ?? 200;
  const graceMs = o.graceMs ?? 60_000;
  const sleep = () => new Promise((r) => setTimeout(r, pollMs));
  for (;;) {
    const status: SecAggStatus = await admin.secureAggregationStatus(roundId);
    const stage = status.stage;
    if (stage === "finished") return { finished: true };
    if (stage === "aborted") return { finished: false, reason: "the edge aborted secure aggregation" };
    if (stage === "not_open") {
      // No device has advertised keys yet: the advertise stage ends with the round's collecting deadline.
      const round = await admin.roundStatus(roundId);
      if (Date.now() > Date.parse(round.deadline) + Math.min(graceMs, 5000)) {
        return { finished: false, reason: `no device advertised keys before the advertise deadline ${round.deadline}` };
      }
      await sleep();
      continue;
    }
    if (!(STAGES as readonly string[]).includes(stage) || status.deadline === undefined) {
      throw new RangeError(`round ${roundId}: unexpected secure-aggregation status ${JSON.stringify(status)}`);
    }
    // Devices that may still answer: those that answered the stage before; while advertising, those in the cohort
    // once every expected device has checked in (before that, or unknown, advertise runs to its deadline): the ones
    // the coin selected, or in a checked-in cohort every device that checked in.
    let expected = status.expected;
    if (expected === undefined && o.expectedCheckIns !== undefined) {
      const round = await admin.roundStatus(roundId);
      const everyCheckIn = round.params.mechanism?.distributed?.cohort === "checked-in";
      if (round.checked_in >= o.expectedCheckIns) expected = everyCheckIn ? round.checked_in : round.selected;
    }
    const answered = status.answered ?? 0;
    if (expected !== undefined && answered > 0 && answered >= expected) {
      o.log?.(`secure aggregation of ${roundId}: all ${answered} devices answered ${stage}, closing it early`);
      try {
        await admin.closeSecureAggregationStage(roundId, stage as Stage);
      } catch (e) {
        if (e instanceof EdgeAdminError && e.status === 409) return { finished: false, reason: e.message };
        throw e;
      }
      continue;
    }
    if (Date.now() > Date.parse(status.deadline) + graceMs) {
      throw new EdgeClientError(
        "stage_overdue",
        `round ${roundId}: the edge still shows the ${stage} stage ${graceMs} ms after its deadline ${status.deadline}`,
      );
    }
    await sleep();
  }
}
