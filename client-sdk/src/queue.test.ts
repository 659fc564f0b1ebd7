import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { UpdateReceipt } from "@fedge/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { APIConnectionError, APIUserAbortError, FedgeAPIError } from "./core/errors.ts";
import { fileStorage } from "./storage/file-storage.ts";
import { memoryStorage } from "./storage/storage.ts";
import { UploadQueue, type QueuedUpdate } from "./queue.ts";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const NOW = Date.parse("2026-11-23T12:00:00Z");
const later = new Date(NOW + 3600_000).toISOString();
const earlier = new Date(NOW - 1000).toISOString();
const entry = (roundId: string, deadline = later, bytes = new Uint8Array([1, 2, 3, roundId.length])) => ({
  roundId,
  deviceId: "dev_abcdefgh",
  model: "mnist-mlp",
  modelVersion: 1,
  deadline,
  bytes,
});
const receiptFor = (e: QueuedUpdate): UpdateReceipt => ({
  round_id: e.roundId,
  device_id: e.deviceId,
  sha256: "0".repeat(64),
  received_at: new Date(NOW).toISOString(),
  duplicate: false,
});
const apiError = (status: number, code: string) => FedgeAPIError.generate(status, { error: { code, message: code } });

describe("UploadQueue", () => {
  it("survives a restart: a new queue on the same files sees the entry and its exact bytes", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "fedge-queue-"));
    dirs.push(dir);
    const bytes = new Uint8Array(1000).map((_, i) => (i * 7) & 255);
    await new UploadQueue({ storage: fileStorage(dir), now: () => NOW }).enqueue(entry("mnist-mlp_1", later, bytes));

    const restarted = new UploadQueue({ storage: fileStorage(dir), now: () => NOW });
    const list = await restarted.list();
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ roundId: "mnist-mlp_1", deviceId: "dev_abcdefgh", attempts: 0, deadline: later });
    expect([...list[0]!.bytes]).toEqual([...bytes]);

    const sent: Uint8Array[] = [];
    const result = await restarted.flush(async (e) => {
      sent.push(e.bytes);
      return receiptFor(e);
    });
    expect(result.uploaded.map((u) => u.entry.roundId)).toEqual(["mnist-mlp_1"]);
    expect([...sent[0]!]).toEqual([...bytes]);
    expect(await new UploadQueue({ storage: fileStorage(dir) }).list()).toEqual([]);
  });

  it("keeps retryable failures, sends the same bytes next time, and counts attempts", async () => {
    const storage = memoryStorage();
    const q = new UploadQueue({ storage, now: () => NOW });
    await q.enqueue(entry("r_1"));
    const seen: number[][] = [];
    const offline = await q.flush(async (e) => {
      seen.push([...e.bytes]);
      throw new APIConnectionError();
    });
    expect(offline.pending).toHaveLength(1);
    expect(offline.pending[0]!.error).toBeInstanceOf(APIConnectionError);
    const busy = await q.flush(async (e) => {
      seen.push([...e.bytes]);
      throw apiError(503, "internal");
    });
    expect(busy.pending).toHaveLength(1);
    const ok = await new UploadQueue({ storage, now: () => NOW }).flush(async (e) => {
      seen.push([...e.bytes]);
      expect(e.attempts).toBe(3);
      return receiptFor(e);
    });
    expect(ok.uploaded).toHaveLength(1);
    expect(seen).toHaveLength(3);
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[2]).toEqual(seen[0]);
    expect(await q.list()).toEqual([]);
  });

  it("drops expired entries unsent and permanently rejected ones with their error", async () => {
    const q = new UploadQueue({ storage: memoryStorage(), now: () => NOW });
    await q.enqueue(entry("r_old", earlier));
    await q.enqueue(entry("r_closed"));
    await q.enqueue(entry("r_ok"));
    const calls: string[] = [];
    const res = await q.flush(async (e) => {
      calls.push(e.roundId);
      if (e.roundId === "r_closed") throw apiError(409, "round_closed");
      return receiptFor(e);
    });
    expect(calls.sort()).toEqual(["r_closed", "r_ok"]);
    expect(res.dropped.map((d) => [d.entry.roundId, d.reason, d.error?.code])).toEqual(
      expect.arrayContaining([
        ["r_old", "expired", undefined],
        ["r_closed", "rejected", "round_closed"],
      ]),
    );
    expect(res.uploaded.map((u) => u.entry.roundId)).toEqual(["r_ok"]);
    expect(await q.list()).toEqual([]);
  });

  it("a user abort stops the pass and keeps the entry", async () => {
    const q = new UploadQueue({ storage: memoryStorage(), now: () => NOW });
    await q.enqueue(entry("r_1"));
    await expect(
      q.flush(async () => {
        throw new APIUserAbortError();
      }),
    ).rejects.toBeInstanceOf(APIUserAbortError);
    expect(await q.list()).toHaveLength(1);
  });

  it("concurrent flushes share one pass (no double upload)", async () => {
    const q = new UploadQueue({ storage: memoryStorage(), now: () => NOW });
    await q.enqueue(entry("r_1"));
    let uploads = 0;
    const up = async (e: QueuedUpdate) => {
      uploads++;
      await new Promise((r) => setTimeout(r, 10));
      return receiptFor(e);
    };
    const [a, b] = await Promise.all([q.flush(up), q.flush(up)]);
    expect(uploads).toBe(1);
    expect(a).toBe(b);
  });

  it("rejects bad entries and deletes unreadable ones", async () => {
    const storage = memoryStorage();
    const q = new UploadQueue({ storage, now: () => NOW });
    await expect(q.enqueue(entry("bad id!"))).rejects.toThrow(TypeError);
    await expect(q.enqueue(entry("r_1", "not a date"))).rejects.toThrow(TypeError);
    await expect(q.enqueue(entry("r_1", later, new Uint8Array()))).rejects.toThrow(TypeError);
    await storage.set("queue/r_junk", new Uint8Array([255, 255, 255, 255, 1]));
    expect(await q.list()).toEqual([]);
    expect(await storage.keys("queue/")).toEqual([]);
    expect(() => new UploadQueue({} as never)).toThrow(TypeError);
  });
});
