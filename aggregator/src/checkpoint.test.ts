import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CheckpointError, CheckpointStore, type Checkpoint } from "./checkpoint.ts";

function sample(round: number, fill: number): Checkpoint {
  const w0 = Float32Array.from({ length: 6 }, (_, i) => fill + i);
  return {
    version: 1,
    population: "digits",
    trainable: "head",
    round,
    model: {
      layers: [
        { inFeatures: 3, outFeatures: 2, weight: w0, bias: new Float32Array([0.5, -0.5]), activation: "relu" },
        {
          inFeatures: 2,
          outFeatures: 1,
          weight: new Float32Array([fill, -fill]),
          bias: new Float32Array([0.25]),
          activation: "none",
        },
      ],
    },
    optimizer: {
      kind: "adam",
      step: round,
      weights: new Float32Array([fill, -fill, 0.25]),
      m: new Float32Array([1, 2, 3]),
      v: new Float32Array([4, 5, 6]),
    },
    clip: { clipNorm: 0.75, adaptive: { clipNorm: 0.75, targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 5 } },
    ledger: null,
    current: { roundId: `r${round}`, round, phase: "opened", openedAt: "2026-11-23T00:00:00.000Z" },
    serving: { version: 3, round: 2, accuracy: 0.9 },
    publishLog: [
      { roundId: "r2", round: 2, published: true, version: 3, reason: "ok", at: "2026-11-23T00:00:00.000Z" },
    ],
  };
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "fedge-ckpt-"));
}

describe("CheckpointStore", () => {
  it("round-trips every field, and an empty directory loads as null", async () => {
    const dir = await tempDir();
    const store = new CheckpointStore({ dir });
    expect(await store.load()).toBeNull();
    const c = sample(4, 1);
    await store.save(c);
    const back = await new CheckpointStore({ dir }).load();
    expect(back).toEqual(c);
  });

  it("keeps only the latest generation of blobs", async () => {
    const dir = await tempDir();
    const store = new CheckpointStore({ dir });
    await store.save(sample(1, 1));
    await store.save(sample(2, 2));
    await new CheckpointStore({ dir }).save(sample(3, 3));
    const files = (await readdir(dir)).sort();
    expect(files).toEqual(["g3-m.f32", "g3-model.f32", "g3-v.f32", "state.json"]);
    expect((await store.load())!.round).toBe(3);
  });

  it("a crash in the middle of a save leaves the previous checkpoint whole", async () => {
    const dir = await tempDir();
    await new CheckpointStore({ dir }).save(sample(1, 1));
    const crashing = new CheckpointStore({
      dir,
      beforeCommit: () => {
        throw new Error("power cut");
      },
    });
    await expect(crashing.save(sample(2, 9))).rejects.toThrow("power cut");
    const back = await new CheckpointStore({ dir }).load();
    expect(back).toEqual(sample(1, 1));
    // and the next save still works
    await new CheckpointStore({ dir }).save(sample(2, 2));
    expect((await new CheckpointStore({ dir }).load())!.round).toBe(2);
  });

  it("refuses a corrupt blob or state file with a CheckpointError", async () => {
    const dir = await tempDir();
    await new CheckpointStore({ dir }).save(sample(1, 1));
    const blob = join(dir, "g1-model.f32");
    const bytes = await readFile(blob);
    bytes[0]! ^= 1;
    await writeFile(blob, bytes);
    await expect(new CheckpointStore({ dir }).load()).rejects.toBeInstanceOf(CheckpointError);
    await writeFile(join(dir, "state.json"), "{not json");
    await expect(new CheckpointStore({ dir }).load()).rejects.toBeInstanceOf(CheckpointError);
    await expect(new CheckpointStore({ dir }).load()).rejects.toMatchObject({ reason: "corrupt" });
  });

  it("rejects an empty dir option", () => {
    expect(() => new CheckpointStore({ dir: "" })).toThrow(TypeError);
    expect(() => new CheckpointStore({ dir: "" })).toThrow(/dir/);
  });
});
