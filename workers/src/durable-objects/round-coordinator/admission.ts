/**
 * @module
 * The RoundCoordinator's rules, as pure functions of the rows it read: whether a round may open or be marked aggregated,
 * what a check-in is answered, what an upload must satisfy, and whether an update is admitted (nonce and duplicate
 * rules) and committed. No storage, no clock, no randomness: the object reads the rows, asks these, then writes.
 *
 * Nonce rules: a device's update to a round is admitted only with the nonce issued to it at a check-in that selected
 * it, once; the same bytes again are a duplicate and answer the first receipt (also after the round closed, so a
 * retried upload is idempotent); different bytes from a device that already reported are refused (`nonce_used`).
 *
 * A `distributed` round takes no uploads: its devices take part in secure aggregation (`SecAggRound`), which admits a
 * device that is not revoked, belongs to the population's tenant and is in the round's cohort (`secAggMembership`):
 * the devices the coin selected, or, when its noise's `cohort` is `checked-in`, every device that checked in (up to
 * `secure_aggregation.max_devices`), the coin then deciding only whether its input is its update or a zero update
 * (`noise-only`) with its noise share.
 */
import {
  DEFAULT_MAX_SELECTED_PER_KEY,
  SECAGG_MAX_DEVICES,
  roundTaskFor,
  secAggStageDeadlinesMs,
  type CheckinResponse,
  type RoundParams,
  type SecureAggregationParams,
  type UpdateReceipt,
} from "@fedge/protocol";
import { fail, type Fail, type Result } from "../../training/result.ts";
import type { UpdateLimits } from "../../training/update-checks.ts";
import type { CheckinRow } from "./checkins.ts";
import { isCollecting, iso, paramsOf, type RoundRow } from "./rounds.ts";
import type { UpdateRow } from "./update-index.ts";

/** Seconds a device waits before checking in again when no round is collecting. */
export const NO_ROUND_RETRY_S = 60;

/** A rule's answer when it has nothing to hand back but its consent. */
export type Verdict = { ok: true } | Fail;
const OK: Verdict = { ok: true };

/** What an upload names before its signature is checked. */
export interface UploadClaim {
  deviceId: string;
  /** base64url nonce from the update. */
  nonce: string;
  sha256: string;
}

export interface UploadTarget {
  limits: UpdateLimits;
  /** Whether the round still takes new updates (a closed round still answers idempotent resubmissions). */
  accepting: boolean;
}

/** What the coordinator knows about an upload before its signature is checked. */
export interface UploadPreflight {
  /** The key the device checked in with for this round; null when it has no check-in here (the route looks it up). */
  publicKey: string | null;
  /** The API key the device checked in under (its revocation stops the device's uploads too); null when unknown. */
  apiKeyId: string | null;
  revoked: boolean;
  /** The nonce and duplicate rules' verdict; a duplicate answers its first receipt. */
  admission: Result<{ duplicate: UpdateReceipt | null }>;
}

export function roundNotFound(roundId: string): Fail {
  return fail("round_not_found", 404, `no round ${roundId}`);
}

// ── admin ──────────────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * A population's next round opens when none is collecting and its deadline is ahead. A `distributed` round opens (and
 * is charged its discrete noise); the edge still refuses plain updates to it (`update-checks.ts`): its devices' inputs
 * reach the aggregator only through secure aggregation.
 */
export function openVerdict(latest: RoundRow | null, params: RoundParams, deadline: number, now: number): Verdict {
  if (latest && isCollecting(latest.state)) {
    return fail("conflict", 409, `round ${latest.round_id} is still ${latest.state}; close it first`);
  }
  if (!(deadline > now)) return fail("validation_failed", 400, "deadline: must be in the future");
  return OK;
}

/**
 * A round is marked aggregated once it is closed with at least `min_reports` accepted updates — in distributed mode,
 * inputs in its finished secure-aggregation sum (`securelyAggregated`: the sum's survivors; undefined when no sum was
 * released); linking a version other than one already linked is a conflict (marking again is idempotent).
 */
export function aggregateVerdict(
  r: RoundRow,
  publishedVersion: number | undefined,
  securelyAggregated?: number,
): Verdict {
  if (isCollecting(r.state)) return fail("conflict", 409, `round ${r.round_id} is still ${r.state}; close it first`);
  const params = paramsOf(r);
  if (params.privacy_mode === "distributed") {
    if (securelyAggregated === undefined || securelyAggregated < params.min_reports) {
      return fail("conflict", 409, `round ${r.round_id} released no secure-aggregation sum`);
    }
  } else if (r.accepted < params.min_reports) {
    return fail(
      "conflict",
      409,
      `round ${r.round_id} has ${r.accepted} accepted updates, fewer than its min_reports ${params.min_reports}`,
    );
  }
  if (publishedVersion !== undefined && r.published_version !== null && r.published_version !== publishedVersion) {
    return fail("conflict", 409, `round ${r.round_id} is already linked to model version ${r.published_version}`);
  }
  return OK;
}

/** A round's updates are listed once it stopped collecting; their payloads only until the retention deleted them. */
export function listUpdatesVerdict(r: RoundRow, withPayloads: boolean): Verdict {
  if (isCollecting(r.state)) {
    return fail("conflict", 409, `round ${r.round_id} is still ${r.state}; its updates are listed once it is closed`);
  }
  if (withPayloads && r.payloads_purged_at !== null) return payloadsPurged(r);
  return OK;
}

/** The answer for a payload of round `r` read after the retention deleted it. */
export function payloadsPurged(r: RoundRow): Fail {
  return fail(
    "not_found",
    404,
    `the payloads of round ${r.round_id} were deleted at ${iso(r.payloads_purged_at!)}, after the retention period (FEDGE_UPDATE_RETENTION_DAYS); their metadata is still listed`,
  );
}

// ── tenants ──────────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * A round may open for `tenant` (undefined: whoever owns the population) when the population has no owner yet or is
 * owned by that tenant.
 */
export function ownerVerdict(model: string, owner: string | null, tenant: string | undefined): Verdict {
  if (owner !== null && tenant !== undefined && tenant !== owner) {
    return fail("conflict", 409, `population ${model} belongs to another tenant`);
  }
  return OK;
}

/** Only the owning tenant's API keys take part in a population (check-ins and uploads). */
export function tenantVerdict(model: string, owner: string, tenant: string): Verdict {
  if (tenant !== owner)
    return fail("forbidden", 403, `population ${model} does not take devices of this API key's tenant`);
  return OK;
}

/**
 * The per-key cap on selections, in rounds without DP only: a coin that selected a device whose API key already has
 * `max_selected_per_key` selected devices in this round is turned down (the device is told `not_sampled`). In DP modes
 * no cap applies: it would make one device's selection depend on another's (a device displacing another, as
 * `max_reports` would), so the sampling would no longer be the independent Poisson coin the accountant assumes. There
 * a key's weight is bounded by its device quota, fixed before any round.
 */
export function capSelection(selected: boolean, selectedForKey: number, params: RoundParams): boolean {
  if (params.privacy_mode !== "none") return selected;
  return selected && selectedForKey < (params.max_selected_per_key ?? DEFAULT_MAX_SELECTED_PER_KEY);
}

// ── devices ────────────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * A check-in before any coin is flipped: a revoked device is refused, and without a collecting round the device is
 * told when to come back. Null when the device takes part in round `latest`.
 */
export function checkinPrecheck(
  deviceId: string,
  revoked: boolean,
  latest: RoundRow | null,
): Result<{ answer: CheckinResponse }> | null {
  if (revoked) return fail("device_revoked", 403, `device ${deviceId} is revoked`);
  if (!latest || !isCollecting(latest.state)) {
    return { ok: true, answer: { selected: false, reason: "no_open_round", retry_after_s: NO_ROUND_RETRY_S } };
  }
  return null;
}

/**
 * Whether every device that checks in to a round joins its secure aggregation (`DistributedNoise.cohort` =
 * `checked-in`: a distributed round whose coin decides only what the device inputs), rather than only those the coin
 * selects.
 */
export function coversCheckedIn(params: RoundParams): boolean {
  return params.privacy_mode === "distributed" && params.mechanism?.distributed?.cohort === "checked-in";
}

/**
 * Before a device's first check-in of round `r` is recorded: a checked-in cohort takes at most
 * `secure_aggregation.max_devices` devices (n_max, what its modulus was planned for; on a round run over S
 * coordinator shards, each shard takes ⌊n_max / S⌋), counted by the check-ins already recorded here. A device past it
 * is refused (409 `round_full`) and nothing of it is recorded: no coin, no receipt, no charge to it.
 */
export function cohortCapVerdict(r: RoundRow): Verdict {
  const params = paramsOf(r);
  if (!coversCheckedIn(params)) return OK;
  const cap = Math.floor((params.secure_aggregation?.max_devices ?? SECAGG_MAX_DEVICES) / Math.max(1, r.shard_count));
  if (r.checked_in >= cap) {
    return fail(
      "round_full",
      409,
      `round ${r.round_id} already holds the ${cap} devices its secure aggregation takes; check in again for the next round`,
    );
  }
  return OK;
}

/**
 * The answer to a check-in in collecting round `r`, given the device's recorded coin (`record`) and whether its update
 * was already accepted (`reported`): the task with its nonce, or when to come back. In a checked-in cohort every
 * device gets the task; `input` says whether its coin put its update in (`update`) or it adds only its noise share
 * with a zero update (`noise-only`).
 */
export function checkinAnswer(r: RoundRow, record: CheckinRow, reported: boolean, now: number): CheckinResponse {
  const retryAfter = Math.max(1, Math.ceil((r.deadline - now) / 1000));
  const params = paramsOf(r);
  if (coversCheckedIn(params)) {
    return {
      selected: true,
      task: roundTaskFor(r.round_id, r.model, params, record.nonce!, iso(r.deadline)),
      input: record.selected ? "update" : "noise-only",
    };
  }
  if (!record.selected)
    return { selected: false, reason: "not_sampled", round_id: r.round_id, retry_after_s: retryAfter };
  if (reported) return { selected: false, reason: "already_reported", round_id: r.round_id, retry_after_s: retryAfter };
  return { selected: true, task: roundTaskFor(r.round_id, r.model, params, record.nonce!, iso(r.deadline)) };
}

/** What an upload to round `r` must satisfy, from its immutable parameters. */
export function uploadTarget(r: RoundRow): UploadTarget {
  const p = paramsOf(r);
  return {
    accepting: isCollecting(r.state),
    limits: {
      update_length: p.update_length,
      update_dtype: p.update_dtype,
      clip_norm: p.clip_norm,
      privacy_mode: p.privacy_mode,
      local_noise_multiplier: p.local_noise_multiplier,
      report_clip_bit: p.report_clip_bit,
    },
  };
}

/** The nonce and duplicate rules for `claim`, given the device's accepted update and check-in rows of round `r`. */
export function admitUpload(
  r: RoundRow,
  claim: UploadClaim,
  existing: UpdateRow | null,
  issued: CheckinRow | null,
): Result<{ duplicate: UpdateReceipt | null }> {
  const { deviceId, nonce, sha256 } = claim;
  if (existing) {
    if (existing.sha256 === sha256) {
      return { ok: true, duplicate: receipt(r, deviceId, sha256, existing.received_at, true) };
    }
    if (existing.named_by === "body") {
      return fail(
        "nonce_used",
        409,
        `device ${deviceId} already reported for round ${r.round_id}, before the edge named updates by their signed digest: a resubmission cannot be matched against that update (named by the SHA-256 of its whole body, ${existing.sha256}); its first receipt stands and its nonce is used`,
      );
    }
    return fail("nonce_used", 409, `device ${deviceId} already reported for round ${r.round_id}; its nonce is used`);
  }
  if (!isCollecting(r.state)) return fail("round_closed", 409, `round ${r.round_id} is ${r.state}`);
  if (!issued || !issued.selected || issued.nonce !== nonce) {
    return fail("nonce_invalid", 403, `this nonce was not issued to device ${deviceId} for round ${r.round_id}`);
  }
  return { ok: true, duplicate: null };
}

/**
 * Before the signature is checked: the key to check it under (the one the device reported or checked in with), the
 * API key it checked in under, its revocation, and the admission verdict.
 */
export function preflight(
  r: RoundRow,
  claim: UploadClaim,
  existing: UpdateRow | null,
  issued: CheckinRow | null,
  revoked: boolean,
): UploadPreflight {
  return {
    publicKey: existing?.public_key ?? issued?.public_key ?? null,
    apiKeyId: issued?.api_key_id ?? null,
    revoked,
    admission: admitUpload(r, claim, existing, issued),
  };
}

/**
 * At a commit whose signature was checked under a key the route learned at check-in (`CheckinGrant`): that key must be
 * the one held here for the device in this round (its accepted update's, else its check-in's); otherwise the commit is
 * refused and the route checks the upload again the ordered way.
 */
export function heldKeyVerdict(
  deviceId: string,
  publicKey: string,
  existing: UpdateRow | null,
  issued: CheckinRow | null,
): Verdict {
  const held = existing?.public_key ?? issued?.public_key ?? null;
  if (held !== publicKey) {
    return fail("bad_signature", 401, `the update was not verified under the key device ${deviceId} checked in with`);
  }
  return OK;
}

/**
 * At commit: an identical update that committed first keeps its receipt (even for a device revoked since); otherwise a
 * device revoked since the preflight is refused like any other race lost, before the admission verdict.
 */
export function commitVerdict(
  deviceId: string,
  admission: Result<{ duplicate: UpdateReceipt | null }>,
  revoked: boolean,
): Result<{ duplicate: UpdateReceipt | null }> {
  if (admission.ok && admission.duplicate) return admission;
  if (revoked) return fail("device_revoked", 403, `device ${deviceId} is revoked`);
  return admission;
}

/** Whether the `n`th accepted update fills round `r` (it closes with reason `max_reports`; never in DP modes). */
export function fillsRound(r: RoundRow, n: number): boolean {
  const max = paramsOf(r).max_reports;
  return max !== undefined && n >= max;
}

export function receipt(
  r: RoundRow,
  deviceId: string,
  sha256: string,
  receivedAt: number,
  duplicate: boolean,
): UpdateReceipt {
  return { round_id: r.round_id, device_id: deviceId, sha256, received_at: iso(receivedAt), duplicate };
}

/** What the secure-aggregation routes need to know of a device in a distributed round. */
export interface SecAggMembership {
  /** The Ed25519 key (base64url) the device checked in with; its secure-aggregation requests must verify under it. */
  publicKey: string;
  /** Whether the round still collects (devices may advertise keys only then). */
  collecting: boolean;
  secureAggregation: SecureAggregationParams;
  /** The noise shares the round was charged for: its sum is released only with at least this many inputs. */
  minInputs: number;
  /** The most devices of the round that may collude with the edge (`corrupt_devices`, absent: 0). */
  corruptDevices: number;
  /** When each secure-aggregation stage closes, ms since the epoch, in stage order (as the device's task states). */
  stageDeadlines: number[];
}

/**
 * Whether `deviceId` takes part in round `r`'s secure aggregation: the round is distributed, the device is of the
 * population's tenant (`owner`, when set), it is in the round's cohort (the coin selected it at check-in, or, in a
 * checked-in cohort, it checked in), and it is not revoked.
 */
export function secAggMembership(
  r: RoundRow,
  deviceId: string,
  owner: string | null,
  tenant: string,
  issued: CheckinRow | null,
  revoked: boolean,
): Result<SecAggMembership> {
  const params = paramsOf(r);
  if (params.privacy_mode !== "distributed" || !params.secure_aggregation) {
    return fail("conflict", 409, `round ${r.round_id} is not a distributed round; it has no secure aggregation`);
  }
  if (owner !== null) {
    const tenancy = tenantVerdict(r.model, owner, tenant);
    if (!tenancy.ok) return tenancy;
  }
  const member = issued !== null && (issued.selected === 1 || coversCheckedIn(params));
  if (!member || issued.public_key === null) {
    const who = coversCheckedIn(params) ? "did not check in to" : "was not selected for";
    return fail("forbidden", 403, `device ${deviceId} ${who} round ${r.round_id}`);
  }
  if (revoked) return fail("device_revoked", 403, `device ${deviceId} is revoked`);
  return {
    ok: true,
    publicKey: issued.public_key,
    collecting: isCollecting(r.state),
    secureAggregation: params.secure_aggregation,
    minInputs: params.mechanism?.distributed?.noise_shares ?? 1,
    corruptDevices: params.mechanism?.distributed?.corrupt_devices ?? 0,
    stageDeadlines: secAggStageDeadlinesMs(params.secure_aggregation, r.deadline),
  };
}
