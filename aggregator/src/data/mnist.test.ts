import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { seededRandomBytes } from "@fedge/privacy/testing";
import { describe, expect, it } from "vitest";
import { loadMnist, MNIST_PIXELS, mnistTestCount, type Dataset } from "./mnist.ts";
import { shardNonIid } from "./shard.ts";

const dir = join(dirname(createRequire(import.meta.url).resolve("mnist/package.json")), "src", "digits");
const raw = Array.from(
  { length: 10 },
  (_, d) => (JSON.parse(readFileSync(join(dir, `${d}.json`), "utf8")) as { data: number[] }).data,
);
const { train, test } = loadMnist();

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const fingerprint = (px: Float32Array) => px.reduce((h, v, k) => h + v * (k + 1) * ((k % 7) + 1), 0);
const row = (ds: Dataset, i: number) => ds.x.subarray(i * MNIST_PIXELS, (i + 1) * MNIST_PIXELS);
const labelCounts = (ds: Dataset) => Array.from({ length: 10 }, (_, d) => ds.y.filter((c) => c === d).length);

describe("loadMnist", () => {
  it("splits the 10,000 digits 8,495 / 1,505 by the last-15 %-of-each-digit rule", () => {
    const counts = raw.map((a) => a.length / MNIST_PIXELS);
    expect(counts).toEqual([1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
    expect(labelCounts(test)).toEqual(counts.map(mnistTestCount));
    expect(labelCounts(train)).toEqual(counts.map((m) => m - mnistTestCount(m)));
    expect(train.n).toBe(8495);
    expect(test.n).toBe(1505);
    expect(train.x.length).toBe(train.n * MNIST_PIXELS);
    expect(mnistTestCount(1001)).toBe(151); // ceil(150.15)
    expect(mnistTestCount(980)).toBe(147); // exactly 147, no float round-up
  });

  it("test samples are the last ones of each digit file, train the first, interleaved round-robin", () => {
    expect(Array.from(train.y.subarray(0, 12))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    expect(Array.from(row(train, 3))).toEqual(Array.from(Float32Array.from(raw[3]!.slice(0, MNIST_PIXELS))));
    // test row 0 is digit 0's first held-out sample: index 1001 − 151 = 850.
    expect(Array.from(row(test, 0))).toEqual(
      Array.from(Float32Array.from(raw[0]!.slice(850 * MNIST_PIXELS, 851 * MNIST_PIXELS))),
    );
    // The last test row is the last sample of the digit with most test samples (1: 170 of them).
    expect(test.y[test.n - 1]).toBe(1);
    expect(Array.from(row(test, test.n - 1))).toEqual(Array.from(Float32Array.from(raw[1]!.slice(-MNIST_PIXELS))));
  });

  it("is deterministic and in [0, 1]", () => {
    const again = loadMnist();
    expect(Buffer.compare(bytes(again.train.x), bytes(train.x))).toBe(0);
    expect(Buffer.compare(bytes(again.test.x), bytes(test.x))).toBe(0);
    expect(again.test.y).toEqual(test.y);
    expect(again.train.x).not.toBe(train.x); // fresh arrays per call
    let inRange = true;
    for (const v of train.x) if (!(v >= 0 && v <= 1)) inRange = false;
    expect(inRange).toBe(true);
  });

  it("refuses a folder that does not hold the digits", () => {
    expect(() => loadMnist({ dir: "/nonexistent" })).toThrow();
  });
});

describe("shardNonIid", () => {
  it("gives each client exactly labelsPerClient labels, disjoint samples, all of the held labels", () => {
    const shards = shardNonIid(train, { clients: 20, labelsPerClient: 2, random: seededRandomBytes(1) });
    expect(shards).toHaveLength(20);
    for (const s of shards) {
      expect(new Set(s.y).size).toBe(2);
      expect(s.x.length).toBe(s.n * MNIST_PIXELS);
    }
    // 20 × 2 = 40 label slots over 10 labels: every label is split among 4 clients, every train sample used once.
    expect(shards.reduce((a, s) => a + s.n, 0)).toBe(train.n);
    // Same multiset of (label, row fingerprint) as the train split: nothing duplicated, nothing lost.
    const prints = (ds: Dataset) => Array.from({ length: ds.n }, (_, i) => `${ds.y[i]}:${fingerprint(row(ds, i))}`);
    expect(shards.flatMap(prints).sort()).toEqual(prints(train).sort());
  });

  it("is reproducible with a seeded source and differs across seeds", () => {
    const a = shardNonIid(train, { clients: 5, labelsPerClient: 3, random: seededRandomBytes(7) });
    const b = shardNonIid(train, { clients: 5, labelsPerClient: 3, random: seededRandomBytes(7) });
    const c = shardNonIid(train, { clients: 5, labelsPerClient: 3, random: seededRandomBytes(8) });
    expect(a.map((s) => s.y)).toEqual(b.map((s) => s.y));
    expect(a.map((s) => Array.from(s.y.subarray(0, 50)))).not.toEqual(c.map((s) => Array.from(s.y.subarray(0, 50))));
  });

  it("leaves out labels no client holds", () => {
    const shards = shardNonIid(train, { clients: 2, labelsPerClient: 1, random: seededRandomBytes(3) });
    expect(shards.map((s) => new Set(s.y).size)).toEqual([1, 1]);
    expect(shards[0]!.y[0]).not.toBe(shards[1]!.y[0]);
  });

  it("refuses bad options", () => {
    const r = seededRandomBytes(1);
    expect(() => shardNonIid(train, { clients: 0, labelsPerClient: 2, random: r })).toThrow(/clients/);
    expect(() => shardNonIid(train, { clients: 3, labelsPerClient: 11, random: r })).toThrow(/labelsPerClient/);
    expect(() => shardNonIid(train, { clients: 3, labelsPerClient: 0, random: r })).toThrow(/labelsPerClient/);
    const tiny: Dataset = { x: new Float32Array(2 * 784), y: new Uint8Array([0, 1]), n: 2 };
    expect(() => shardNonIid(tiny, { clients: 5, labelsPerClient: 1, random: r })).toThrow(/no sample/);
    expect(() => shardNonIid({ ...tiny, n: 3 }, { clients: 1, labelsPerClient: 1, random: r })).toThrow(RangeError);
  });
});
