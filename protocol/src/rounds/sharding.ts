/**
 * @module
 * Sharded round coordination: a population's round is served by S coordinator shards (S per population, 1 by default).
 * The edge maps each device to a shard with a keyed hash the device cannot steer; each shard flips the Poisson coins,
 * issues the nonces and indexes the updates of its devices, while the population's ledger is charged once per round.
 *
 * S is chosen by the admin (`shards`) or from the population's expected size (`expected_devices`, see
 * `defaultShardCount`). It only grows, and only between rounds: every round records the S it ran with, so a device's
 * state in an earlier round is found where it was, after the device moved.
 */
import { z } from "zod";
import { IsoDateTime, ModelName } from "../common.ts";

/** Most coordinator shards one population may have. */
export const MAX_COORDINATOR_SHARDS = 64;

/**
 * Check-ins a round one shard is sized for. Cloudflare documents a soft limit of about 1,000 requests a second per
 * Durable Object; a device costs a shard one check-in and, if selected, an upload preflight and commit. 50,000 devices
 * checking in over a 10-minute round are about 85 check-ins a second, which leaves headroom for devices that arrive in
 * bursts rather than evenly.
 */
export const DEVICES_PER_SHARD = 50_000;

/** The default S for a population that expects `expectedDevices` check-ins a round: ⌈N / DEVICES_PER_SHARD⌉, capped. */
export function defaultShardCount(expectedDevices: number): number {
  if (!(Number.isSafeInteger(expectedDevices) && expectedDevices >= 1)) {
    throw new RangeError(`defaultShardCount: expected devices must be a positive integer, got ${expectedDevices}`);
  }
  return Math.min(MAX_COORDINATOR_SHARDS, Math.ceil(expectedDevices / DEVICES_PER_SHARD));
}

export const ShardCount = z.number().int().min(1).max(MAX_COORDINATOR_SHARDS);

/** `PUT /v1/admin/populations/:name/sharding`: give exactly one of `shards` and `expected_devices`. */
export const PopulationShardingRequest = z
  .object({
    /** S itself (1 … MAX_COORDINATOR_SHARDS). */
    shards: ShardCount.optional(),
    /** Check-ins expected per round; S becomes `defaultShardCount(expected_devices)`. */
    expected_devices: z.number().int().min(1).max(1_000_000_000).optional(),
  })
  .strict()
  .refine((r) => (r.shards === undefined) !== (r.expected_devices === undefined), {
    message: "give exactly one of shards and expected_devices",
    path: ["shards"],
  })
  .meta({ id: "PopulationShardingRequest" });
export type PopulationShardingRequest = z.infer<typeof PopulationShardingRequest>;

export const PopulationSharding = z
  .object({
    model: ModelName,
    /** The S the population's next round opens with. */
    shards: ShardCount,
    /** What the admin gave as the expected size, if S was derived from it. */
    expected_devices: z.number().int().positive().nullable(),
    /** When S was last set; null while the population has the default of 1. */
    set_at: IsoDateTime.nullable(),
  })
  .meta({ id: "PopulationSharding" });
export type PopulationSharding = z.infer<typeof PopulationSharding>;
