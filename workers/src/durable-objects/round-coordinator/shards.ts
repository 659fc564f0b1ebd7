/**
 * @module
 * Where a population's shards live and how their answers are combined: the naming of shard objects, the page cursor
 * that walks every shard of a round, and the share of a round's per-round caps each shard enforces. Pure, apart
 * from `shardStub`, which only names an object.
 *
 * A population with S = 1 is served by its own object (`model`), exactly as before shards existed. With S > 1 the
 * population's object keeps the rounds, the ledger and the owner, and shard i is the object `model#i` (a `#` never
 * appears in a model name, so no population can address another's shard).
 */
import { DEFAULT_MAX_SELECTED_PER_KEY, type RoundParams } from "@fedge/protocol";
import type { Bindings } from "../../env.ts";
import { fail, type Result } from "../../training/result.ts";
import { isCollecting, type RoundRow } from "./rounds.ts";

/** The object that serves shard `index` of a round with `shards` shards. */
export function shardStub(env: Bindings, model: string, index: number, shards: number) {
  return env.ROUNDS.getByName(shards === 1 ? model : `${model}#${index}`);
}

/** A sharded round's update cursor is shard × SPAN + the shard's own acceptance number (safe up to 2²¹ shards). */
export const SHARD_CURSOR_SPAN = 2 ** 32;

export function shardCursor(shard: number, n: number): number {
  return shard * SHARD_CURSOR_SPAN + n;
}

/** Splits a cursor into the shard to read and the acceptance number to read after. */
export function splitCursor(cursor: number): { shard: number; after: number } {
  return { shard: Math.floor(cursor / SHARD_CURSOR_SPAN), after: cursor % SHARD_CURSOR_SPAN };
}

/**
 * The parameters shard devices see, with the round's count caps split between the shards (⌈cap / S⌉ each): `max_reports`
 * closes a shard when its share is accepted, and `max_selected_per_key` caps a key per shard. Both exist only in privacy
 * mode `none` (a DP round has neither), so the split never touches the Poisson sampling the accountant assumes.
 */
export function shardParams(params: RoundParams, shards: number): RoundParams {
  if (shards === 1) return params;
  const share = (cap: number | undefined) => (cap === undefined ? undefined : Math.ceil(cap / shards));
  const out: RoundParams = { ...params };
  const maxReports = share(params.max_reports);
  // In mode none a key is capped even when the round does not say (`capSelection`): split the default too.
  const maxPerKey = share(
    params.privacy_mode === "none" ? (params.max_selected_per_key ?? DEFAULT_MAX_SELECTED_PER_KEY) : undefined,
  );
  if (maxReports !== undefined) out.max_reports = maxReports;
  if (maxPerKey !== undefined) out.max_selected_per_key = maxPerKey;
  if (out.max_reports !== undefined && out.min_reports > out.max_reports) out.min_reports = out.max_reports;
  return out;
}

/**
 * Whether the population may move to `requested` shards now: S only grows (each round keeps the S it ran with, and a
 * smaller S would have to merge shards' revocations and counters for nothing), and only between rounds (a collecting
 * round's devices are already spread over its shards). Setting the S it already has is a no-op, allowed any time.
 */
export function shardingChangeVerdict(latest: RoundRow | null, current: number, requested: number): Result<object> {
  if (requested === current) return { ok: true };
  if (requested < current) {
    return fail(
      "conflict",
      409,
      `the population has ${current} coordinator shards and they only grow: ${requested} refused`,
    );
  }
  if (latest && isCollecting(latest.state)) {
    return fail(
      "conflict",
      409,
      `round ${latest.round_id} is collecting on ${latest.shard_count} shards; change the shard count between rounds`,
    );
  }
  return { ok: true };
}

/** A call routed with a shard count that is out of date: the caller recomputes the device's shard with `shards`. */
export type Misrouted = { ok: false; code: "conflict"; status: 409; message: string; reshard: number };

export function misrouted(shards: number): Misrouted {
  return { ok: false, code: "conflict", status: 409, message: `the round runs on ${shards} shards`, reshard: shards };
}
