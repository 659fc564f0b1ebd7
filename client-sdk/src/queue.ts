/**
 * @module
 * The offline upload queue. A signed update is written to storage before the first upload attempt, so it survives
 * a crash, a closed tab or a lost connection, and is sent again (the very same bytes, hence the same nonce and
 * signature: the edge answers an identical resubmission with the same receipt) until the edge accepts it, rejects it
 * for good, or the round's deadline passes. One entry per round: a device reports at most once per round.
 *
 * Entry format in storage (`queue/<round_id>`): 4-byte little-endian length of a UTF-8 JSON header, the header, then
 * the update bytes.
 */
import type { UpdateReceipt } from "@fedge/protocol";
import { FedgeAPIError, FedgeClientError } from "./core/errors.ts";
import { shouldRetry } from "./internal/retry.ts";
import type { QueueStorage } from "./storage/storage.ts";

/** One signed update waiting for upload. */
export interface QueuedUpdate {
  roundId: string;
  deviceId: string;
  model: string;
  modelVersion: number;
  /** The round's deadline (ISO 8601): after it the entry is dropped unsent. */
  deadline: string;
  /** When the entry was queued (ISO 8601). */
  queuedAt: string;
  /** Upload attempts made so far (each may include HTTP retries). */
  attempts: number;
  /** The encoded, signed update (`application/vnd.fedge.update`). */
  bytes: Uint8Array;
}

/** Why an entry left the queue without a receipt. */
export type DropReason =
  /** The round's deadline passed before the edge accepted it. */
  | "expired"
  /** The edge refused it for good (a 4xx other than 408/429); `error` tells why (e.g. `round_closed`). */
  | "rejected";

export interface FlushResult {
  uploaded: { entry: QueuedUpdate; receipt: UpdateReceipt }[];
  dropped: { entry: QueuedUpdate; reason: DropReason; error?: FedgeClientError }[];
  /** Still queued: a retryable failure (offline, 5xx, 429); try again later. */
  pending: { entry: QueuedUpdate; error: FedgeClientError }[];
}

export interface UploadQueueOptions {
  storage: QueueStorage;
  /** Clock, for deadline checks. @default Date.now */
  now?: () => number;
}

const PREFIX = "queue/";

export class UploadQueue {
  readonly storage: QueueStorage;
  private readonly now: () => number;
  private flushing: Promise<FlushResult> | undefined;

  constructor(options: UploadQueueOptions) {
    if (!options || !options.storage) throw new TypeError("UploadQueue: storage is required");
    this.storage = options.storage;
    this.now = options.now ?? Date.now;
  }

  /** Persists an entry (replacing any entry of the same round). Resolves once it is durable. */
  async enqueue(entry: Omit<QueuedUpdate, "attempts" | "queuedAt"> & Partial<QueuedUpdate>): Promise<QueuedUpdate> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(entry.roundId))
      throw new TypeError(`invalid round id ${JSON.stringify(entry.roundId)}`);
    if (Number.isNaN(Date.parse(entry.deadline)))
      throw new TypeError(`invalid deadline ${JSON.stringify(entry.deadline)}`);
    if (!(entry.bytes instanceof Uint8Array) || entry.bytes.length === 0)
      throw new TypeError("bytes must be a non-empty Uint8Array");
    const full: QueuedUpdate = {
      ...entry,
      attempts: entry.attempts ?? 0,
      queuedAt: entry.queuedAt ?? new Date(this.now()).toISOString(),
    };
    await this.storage.set(PREFIX + full.roundId, serialize(full));
    return full;
  }

  async get(roundId: string): Promise<QueuedUpdate | undefined> {
    const bytes = await this.storage.get(PREFIX + roundId);
    return bytes ? deserialize(bytes) : undefined;
  }

  /** Every queued entry, oldest first. Entries that cannot be read are deleted. */
  async list(): Promise<QueuedUpdate[]> {
    const out: QueuedUpdate[] = [];
    for (const key of await this.storage.keys(PREFIX)) {
      const bytes = await this.storage.get(key);
      if (!bytes) continue;
      try {
        out.push(deserialize(bytes));
      } catch {
        await this.storage.delete(key);
      }
    }
    return out.sort((a, b) => (a.queuedAt < b.queuedAt ? -1 : a.queuedAt > b.queuedAt ? 1 : 0));
  }

  async remove(roundId: string): Promise<void> {
    await this.storage.delete(PREFIX + roundId);
  }

  /**
   * Tries to upload every entry once (in order): an accepted entry is removed and returned with its receipt, an
   * expired or permanently rejected one is removed with its reason, a retryable failure stays queued. Concurrent
   * calls share one pass. A user abort stops the pass and is rethrown.
   */
  flush(upload: (entry: QueuedUpdate) => Promise<UpdateReceipt>): Promise<FlushResult> {
    this.flushing ??= this.flushOnce(upload).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async flushOnce(upload: (entry: QueuedUpdate) => Promise<UpdateReceipt>): Promise<FlushResult> {
    const result: FlushResult = { uploaded: [], dropped: [], pending: [] };
    for (const entry of await this.list()) {
      if (Date.parse(entry.deadline) <= this.now()) {
        await this.remove(entry.roundId);
        result.dropped.push({ entry, reason: "expired" });
        continue;
      }
      entry.attempts += 1;
      await this.storage.set(PREFIX + entry.roundId, serialize(entry));
      try {
        const receipt = await upload(entry);
        await this.remove(entry.roundId);
        result.uploaded.push({ entry, receipt });
      } catch (err) {
        if (err instanceof FedgeAPIError && err.code === "aborted") throw err;
        const typed =
          err instanceof FedgeClientError
            ? err
            : new FedgeClientError("upload_failed", String((err as Error)?.message ?? err), { cause: err });
        if (shouldRetry(typed)) {
          result.pending.push({ entry, error: typed });
        } else {
          await this.remove(entry.roundId);
          result.dropped.push({ entry, reason: "rejected", error: typed });
        }
      }
    }
    return result;
  }
}

interface Header {
  v: 1;
  roundId: string;
  deviceId: string;
  model: string;
  modelVersion: number;
  deadline: string;
  queuedAt: string;
  attempts: number;
}

function serialize(e: QueuedUpdate): Uint8Array {
  const header: Header = {
    v: 1,
    roundId: e.roundId,
    deviceId: e.deviceId,
    model: e.model,
    modelVersion: e.modelVersion,
    deadline: e.deadline,
    queuedAt: e.queuedAt,
    attempts: e.attempts,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + json.length + e.bytes.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 4);
  out.set(e.bytes, 4 + json.length);
  return out;
}

function deserialize(bytes: Uint8Array): QueuedUpdate {
  if (bytes.length < 4) throw new RangeError("queue entry truncated");
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  if (4 + n > bytes.length) throw new RangeError("queue entry truncated");
  const h = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + n))) as Header;
  if (h.v !== 1 || typeof h.roundId !== "string") throw new RangeError("unknown queue entry format");
  return {
    roundId: h.roundId,
    deviceId: h.deviceId,
    model: h.model,
    modelVersion: h.modelVersion,
    deadline: h.deadline,
    queuedAt: h.queuedAt,
    attempts: h.attempts,
    bytes: bytes.slice(4 + n),
  };
}
