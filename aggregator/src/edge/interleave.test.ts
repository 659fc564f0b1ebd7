import { describe, expect, it } from "vitest";
import { interleave } from "./interleave.ts";

async function* slow<T>(items: T[], delayMs: number): AsyncGenerator<T> {
  for (const item of items) {
    await new Promise((r) => setTimeout(r, delayMs));
    yield item;
  }
}

describe("interleave", () => {
  it("yields every item of every source once, reading the sources at the same time", async () => {
    const out: string[] = [];
    for await (const x of interleave([slow(["a1", "a2", "a3"], 30), slow(["b1"], 5), slow([], 1)])) out.push(x);
    expect(out.sort()).toEqual(["a1", "a2", "a3", "b1"]);
    // b1 arrives while source a is still waiting for its first item.
    const order: string[] = [];
    for await (const x of interleave([slow(["a1"], 40), slow(["b1"], 5)])) order.push(x);
    expect(order).toEqual(["b1", "a1"]);
  });

  it("throws a source's failure and releases the other sources", async () => {
    let released = false;
    async function* endless(): AsyncGenerator<number> {
      try {
        for (let i = 0; ; i++) {
          await new Promise((r) => setTimeout(r, 5));
          yield i;
        }
      } finally {
        released = true;
      }
    }
    async function* failing(): AsyncGenerator<number> {
      await new Promise((r) => setTimeout(r, 20));
      throw new Error("shard 2 failed");
    }
    await expect(
      (async () => {
        for await (const _ of interleave([endless(), failing()])) void _;
      })(),
    ).rejects.toThrow("shard 2 failed");
    expect(released).toBe(true);
  });
});
