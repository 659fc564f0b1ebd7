import { describe, expect, it } from "vitest";
import { DEVICES_PER_SHARD, MAX_COORDINATOR_SHARDS, PopulationShardingRequest, defaultShardCount } from "./sharding.ts";

describe("defaultShardCount", () => {
  it("is ⌈N / DEVICES_PER_SHARD⌉, at least 1 and at most MAX_COORDINATOR_SHARDS", () => {
    expect(defaultShardCount(1)).toBe(1);
    expect(defaultShardCount(DEVICES_PER_SHARD)).toBe(1);
    expect(defaultShardCount(DEVICES_PER_SHARD + 1)).toBe(2);
    expect(defaultShardCount(1_000_000)).toBe(20);
    expect(defaultShardCount(1_000_000_000)).toBe(MAX_COORDINATOR_SHARDS);
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => defaultShardCount(bad)).toThrow(RangeError);
  });
});

describe("PopulationShardingRequest", () => {
  it("takes exactly one of shards (1…64) and expected_devices", () => {
    expect(PopulationShardingRequest.safeParse({ shards: 4 }).success).toBe(true);
    expect(PopulationShardingRequest.safeParse({ expected_devices: 10 }).success).toBe(true);
    for (const bad of [{}, { shards: 0 }, { shards: 65 }, { shards: 2, expected_devices: 3 }, { shards: 2, x: 1 }]) {
      expect(PopulationShardingRequest.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });
});
