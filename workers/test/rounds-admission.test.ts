/**
 * The RoundCoordinator's admission rules (round-coordinator/admission.ts) on hand-built rows: pure functions, so
 * nothing here touches a Durable Object or storage.
 */
import { describe, expect, it } from "vitest";
import type { RoundParams, RoundState } from "@fedge/protocol";
import {
  NO_ROUND_RETRY_S,
  admitUpload,
  aggregateVerdict,
  checkinAnswer,
  checkinPrecheck,
  cohortCapVerdict,
  commitVerdict,
  fillsRound,
  heldKeyVerdict,
  listUpdatesVerdict,
  openVerdict,
  preflight,
  secAggMembership,
  uploadTarget,
} from "../src/durable-objects/round-coordinator/admission.ts";
import type { CheckinRow } from "../src/durable-objects/round-coordinator/checkins.ts";
import type { RoundRow } from "../src/durable-objects/round-coordinator/rounds.ts";
import type { UpdateRow } from "../src/durable-objects/round-coordinator/update-index.ts";

const T0 = Date.parse("2026-11-01T00:00:00Z");

const params: RoundParams = {
  model_version: 1,
  clip_norm: 1,
  learning_rate: 0.1,
  local_epochs: 1,
  batch_size: 16,
  privacy_mode: "central",
  trainable: "all",
  update_length: 8,
  update_dtype: "float32",
  sampling_rate: 0.5,
  min_reports: 2,
  max_reports: 3,
};

function round(state: RoundState, over: Partial<RoundRow> = {}, p: Partial<RoundParams> = {}): RoundRow {
  return {
    seq: 1,
    round_id: "m_1",
    model: "m",
    state,
    params: JSON.stringify({ ...params, ...p }),
    opened_at: T0,
    deadline: T0 + 600_000,
    closed_at: null,
    close_reason: null,
    aggregated_at: null,
    published_version: null,
    checked_in: 0,
    selected: 0,
    accepted: 0,
    sealed_at: null,
    payloads_purged_at: null,
    payloads_deleted_at: null,
    update_store_payloads: 0,
    shard_count: 1,
    shard_index: null,
    shards_opened_at: null,
    shards_settled_at: null,
    dp_release: null,
    ...over,
  };
}

const selected: CheckinRow = { selected: 1, nonce: "nonce-a", public_key: "pk-checkin", api_key_id: "key1" };
const notSelected: CheckinRow = { selected: 0, nonce: null, public_key: "pk-checkin", api_key_id: "key1" };
const accepted: UpdateRow = {
  n: 1,
  device_id: "dev_a",
  public_key: "pk-update",
  sha256: "aa",
  byte_length: 100,
  storage_key: "rounds/m_1/dev_a/aa",
  received_at: T0 + 1000,
  named_by: "signed_digest",
};
const claim = { deviceId: "dev_a", nonce: "nonce-a", sha256: "aa" };

describe("opening a round", () => {
  it("refuses while the newest round collects, then checks the deadline (a distributed round may open)", () => {
    expect(openVerdict(null, params, T0 + 1, T0)).toEqual({ ok: true });
    expect(openVerdict(round("closed"), params, T0 + 1, T0)).toEqual({ ok: true });
    expect(openVerdict(round("aggregated"), params, T0 + 1, T0)).toEqual({ ok: true });
    for (const s of ["open", "collecting"] as const) {
      expect(openVerdict(round(s), { ...params, privacy_mode: "distributed" }, T0, T0)).toMatchObject({
        ok: false,
        code: "conflict",
        status: 409,
      });
    }
    // A distributed round opens (its secure aggregation is checked by OpenRoundRequest, and run by SecAggRound).
    const distributed = {
      ...params,
      privacy_mode: "distributed",
      secure_aggregation: { modulus_bits: 16, encoded_length: 8 },
    };
    expect(openVerdict(null, distributed as typeof params, T0 + 1, T0)).toEqual({ ok: true });
    expect(openVerdict(null, params, T0, T0)).toMatchObject({
      code: "validation_failed",
      message: expect.stringMatching(/deadline/),
    });
  });
});

describe("marking a round aggregated", () => {
  it("needs a closed round with min_reports updates, and keeps a linked version", () => {
    expect(aggregateVerdict(round("collecting", { accepted: 5 }), undefined)).toMatchObject({ code: "conflict" });
    expect(aggregateVerdict(round("closed", { accepted: 1 }), undefined)).toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/min_reports 2/),
    });
    expect(aggregateVerdict(round("closed", { accepted: 2 }), 7)).toEqual({ ok: true });
    const linked = round("aggregated", { accepted: 2, published_version: 7 });
    expect(aggregateVerdict(linked, 7)).toEqual({ ok: true });
    expect(aggregateVerdict(linked, undefined)).toEqual({ ok: true });
    expect(aggregateVerdict(linked, 8)).toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/version 7/),
    });
  });
});

describe("listing a round's updates", () => {
  it("waits for the round to close, and refuses payloads the retention deleted (metadata stays)", () => {
    expect(listUpdatesVerdict(round("open"), false)).toMatchObject({ code: "conflict", status: 409 });
    expect(listUpdatesVerdict(round("closed"), true)).toEqual({ ok: true });
    const purged = round("aggregated", { payloads_purged_at: T0 });
    expect(listUpdatesVerdict(purged, false)).toEqual({ ok: true });
    expect(listUpdatesVerdict(purged, true)).toMatchObject({ code: "not_found", status: 404 });
  });
});

describe("check-ins", () => {
  it("refuses a revoked device before anything else, and sends others away while no round collects", () => {
    expect(checkinPrecheck("dev_a", true, null)).toMatchObject({ code: "device_revoked", status: 403 });
    expect(checkinPrecheck("dev_a", true, round("collecting"))).toMatchObject({ code: "device_revoked" });
    const away = { ok: true, answer: { selected: false, reason: "no_open_round", retry_after_s: NO_ROUND_RETRY_S } };
    expect(checkinPrecheck("dev_a", false, null)).toEqual(away);
    expect(checkinPrecheck("dev_a", false, round("closed"))).toEqual(away);
    expect(checkinPrecheck("dev_a", false, round("open"))).toBeNull();
    expect(checkinPrecheck("dev_a", false, round("collecting"))).toBeNull();
  });

  it("answers from the recorded coin: not sampled, already reported, or the task with its nonce", () => {
    const r = round("collecting");
    expect(checkinAnswer(r, notSelected, false, T0 + 598_500)).toEqual({
      selected: false,
      reason: "not_sampled",
      round_id: "m_1",
      retry_after_s: 2,
    });
    // Never less than a second, even past the deadline.
    expect(checkinAnswer(r, selected, true, T0 + 700_000)).toEqual({
      selected: false,
      reason: "already_reported",
      round_id: "m_1",
      retry_after_s: 1,
    });
    const answer = checkinAnswer(r, selected, false, T0);
    expect(answer).toMatchObject({
      selected: true,
      task: { round_id: "m_1", model: "m", nonce: "nonce-a", deadline: "2026-11-01T00:10:00.000Z", update_length: 8 },
    });
  });
});

describe("uploads", () => {
  it("takes its limits from the round's parameters, and accepts while the round collects", () => {
    expect(uploadTarget(round("collecting", {}, { privacy_mode: "local", local_noise_multiplier: 0.5 }))).toEqual({
      accepting: true,
      limits: {
        update_length: 8,
        update_dtype: "float32",
        clip_norm: 1,
        privacy_mode: "local",
        local_noise_multiplier: 0.5,
      },
    });
    expect(uploadTarget(round("closed")).accepting).toBe(false);
  });

  it("admits the nonce issued to a selected device, once", () => {
    const r = round("collecting");
    expect(admitUpload(r, claim, null, selected)).toEqual({ ok: true, duplicate: null });
    expect(admitUpload(r, claim, null, null)).toMatchObject({ code: "nonce_invalid", status: 403 });
    expect(admitUpload(r, claim, null, notSelected)).toMatchObject({ code: "nonce_invalid" });
    expect(admitUpload(r, { ...claim, nonce: "nonce-b" }, null, selected)).toMatchObject({ code: "nonce_invalid" });
    expect(admitUpload(round("closed"), claim, null, selected)).toMatchObject({ code: "round_closed", status: 409 });
  });

  it("answers the same bytes again with the first receipt, also once the round closed; other bytes are nonce_used", () => {
    for (const s of ["collecting", "closed", "aggregated"] as const) {
      expect(admitUpload(round(s), claim, accepted, selected)).toEqual({
        ok: true,
        duplicate: {
          round_id: "m_1",
          device_id: "dev_a",
          sha256: "aa",
          received_at: new Date(T0 + 1000).toISOString(),
          duplicate: true,
        },
      });
      expect(admitUpload(round(s), { ...claim, sha256: "bb" }, accepted, selected)).toMatchObject({
        code: "nonce_used",
        status: 409,
      });
    }
  });

  it("refuses a resubmission of an update named by its whole body's hash with a message saying why", () => {
    const old = { ...accepted, sha256: "cc", named_by: "body" as const };
    expect(admitUpload(round("collecting"), claim, old, selected)).toMatchObject({
      ok: false,
      code: "nonce_used",
      status: 409,
      message: expect.stringMatching(
        /before the edge named updates by their signed digest.*SHA-256 of its whole body, cc/,
      ),
    });
  });

  it("preflight names the key to verify under: the reported one, else the checked-in one", () => {
    const r = round("collecting");
    expect(preflight(r, claim, accepted, selected, false)).toMatchObject({
      publicKey: "pk-update",
      apiKeyId: "key1",
      revoked: false,
      admission: { ok: true, duplicate: { duplicate: true } },
    });
    expect(preflight(r, claim, null, selected, true)).toMatchObject({
      publicKey: "pk-checkin",
      revoked: true,
      admission: { ok: true, duplicate: null },
    });
    expect(preflight(r, claim, null, null, false)).toMatchObject({
      publicKey: null,
      apiKeyId: null,
      admission: { ok: false, code: "nonce_invalid" },
    });
  });

  it("commits unless revoked since; a committed duplicate keeps its receipt even then", () => {
    const r = round("collecting");
    const dup = admitUpload(r, claim, accepted, selected);
    expect(commitVerdict("dev_a", dup, true)).toBe(dup);
    const fresh = admitUpload(r, claim, null, selected);
    expect(commitVerdict("dev_a", fresh, false)).toEqual({ ok: true, duplicate: null });
    expect(commitVerdict("dev_a", fresh, true)).toMatchObject({ code: "device_revoked", status: 403 });
    // Revocation is reported before the nonce rules.
    expect(commitVerdict("dev_a", admitUpload(r, claim, null, null), true)).toMatchObject({ code: "device_revoked" });
    expect(commitVerdict("dev_a", admitUpload(r, claim, null, null), false)).toMatchObject({ code: "nonce_invalid" });
  });

  it("a commit that skipped the preflight must name the key held for the device: the reported one, else the checked-in one", () => {
    expect(heldKeyVerdict("dev_a", "pk-checkin", null, selected)).toEqual({ ok: true });
    expect(heldKeyVerdict("dev_a", "pk-update", accepted, selected)).toEqual({ ok: true });
    expect(heldKeyVerdict("dev_a", "pk-checkin", accepted, selected)).toMatchObject({
      code: "bad_signature",
      status: 401,
    });
    expect(heldKeyVerdict("dev_a", "pk-other", null, selected)).toMatchObject({ code: "bad_signature" });
    // A device that never checked in here has no key held: nothing to match.
    expect(heldKeyVerdict("dev_a", "pk-checkin", null, null)).toMatchObject({ code: "bad_signature" });
  });

  it("closes the round at max_reports", () => {
    expect(fillsRound(round("collecting"), 2)).toBe(false);
    expect(fillsRound(round("collecting"), 3)).toBe(true);
  });
});

describe("a distributed round whose cohort is every check-in", () => {
  const noise = {
    bits: 20,
    scale: 64,
    dimension: 8,
    noise_shares: 4,
    share_variance: 100,
    sensitivity_bound: 4096,
  };
  const distributed = (cohort: "sampled" | "checked-in" | undefined, maxDevices?: number): Partial<RoundParams> => ({
    privacy_mode: "distributed",
    min_reports: 1,
    max_reports: undefined,
    mechanism: {
      noise_multiplier: 1,
      clip_rule: "fixed",
      distributed: { ...noise, ...(cohort ? { cohort } : {}) },
    },
    rotation_seed: "A".repeat(43),
    secure_aggregation: {
      modulus_bits: 20,
      encoded_length: 8,
      ...(maxDevices !== undefined ? { max_devices: maxDevices } : {}),
    },
  });
  const tasked: CheckinRow = { ...notSelected, nonce: "nonce-b" };

  it("gives every check-in the task, its input the coin's; a sampled cohort keeps its answers", () => {
    const covered = round("collecting", {}, distributed("checked-in"));
    expect(checkinAnswer(covered, selected, false, T0)).toMatchObject({ selected: true, input: "update" });
    const left = checkinAnswer(covered, tasked, false, T0);
    expect(left).toMatchObject({ selected: true, input: "noise-only" });
    expect(left.selected && left.task.distributed?.cohort).toBe("checked-in");
    for (const cohort of ["sampled", undefined] as const) {
      const sampled = round("collecting", {}, distributed(cohort));
      expect(checkinAnswer(sampled, notSelected, false, T0)).toMatchObject({ selected: false, reason: "not_sampled" });
      const answer = checkinAnswer(sampled, selected, false, T0);
      expect(answer.selected && answer).not.toHaveProperty("input");
    }
  });

  it("admits a coin-excluded device to the secure aggregation only in a checked-in cohort", () => {
    const covered = round("collecting", {}, distributed("checked-in"));
    expect(secAggMembership(covered, "dev_a", null, "t", tasked, false)).toMatchObject({ ok: true });
    expect(secAggMembership(covered, "dev_a", null, "t", null, false)).toMatchObject({ ok: false, status: 403 });
    expect(secAggMembership(covered, "dev_a", null, "t", tasked, true)).toMatchObject({ code: "device_revoked" });
    const sampled = round("collecting", {}, distributed("sampled"));
    expect(secAggMembership(sampled, "dev_a", null, "t", tasked, false)).toMatchObject({ ok: false, status: 403 });
    expect(secAggMembership(sampled, "dev_a", null, "t", selected, false)).toMatchObject({ ok: true });
  });

  it("caps a checked-in cohort at max_devices (n_max / S on a shard); a sampled cohort is not capped", () => {
    const at = (checkedIn: number, maxDevices?: number, shards = 1, cohort: "checked-in" | "sampled" = "checked-in") =>
      cohortCapVerdict(
        round("collecting", { checked_in: checkedIn, shard_count: shards }, distributed(cohort, maxDevices)),
      );
    expect(at(9, 10)).toEqual({ ok: true });
    expect(at(10, 10)).toMatchObject({ ok: false, status: 409, code: "round_full" });
    expect(at(4, 10, 2)).toEqual({ ok: true });
    expect(at(5, 10, 2)).toMatchObject({ code: "round_full" });
    expect(at(65_534)).toEqual({ ok: true });
    expect(at(65_535)).toMatchObject({ code: "round_full" }); // SecAgg+'s roster limit when the round names none
    expect(at(1_000_000, 10, 1, "sampled")).toEqual({ ok: true });
    expect(cohortCapVerdict(round("collecting", { checked_in: 1_000_000 }))).toEqual({ ok: true }); // central
  });
});
