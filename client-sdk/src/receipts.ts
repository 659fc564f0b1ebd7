/**
 * @module
 * Check-in receipts on the device: the edge signs one at every check-in for a differentially private round (selected
 * or not: the device's Poisson coin was flipped, so its privacy loss accrues), with its own Ed25519 key. The SDK
 * verifies each against the pinned edge key before it keeps it (`privacy/receipts/<model>/<round>` in the client's
 * storage); a forged or altered receipt is refused with `UntrustedReceiptError` and never stored. `client.privacy()`
 * recomputes ε from the stored receipts, verified again when read (`device-accounting.ts`).
 *
 * Pinning the edge key: the app passes `edgePublicKey`, or the SDK reads `GET /.well-known/fedge-edge-key` once, on
 * the first receipt, and pins that key in storage from then on (trust on first use). A pinned key holds against an
 * edge that later signs with another key; an unpinned first read trusts whoever answers that one request, so an app
 * that can ship the key (from `npm run provision`'s output) should pass it.
 *
 * The signed bytes are @fedge/protocol's `checkinReceiptSigningBytes` (imported from its zod-free entry).
 */
import { verifyCheckinReceipt, type SignedCheckinReceipt } from "@fedge/protocol/receipt";
import { UntrustedReceiptError } from "./core/errors.ts";
import { fromBase64Url, toBase64Url } from "./internal/encoding.ts";
import { getJson, setJson, type FedgeStorage } from "./storage/storage.ts";

/** A receipt as the SDK keeps it. */
export interface StoredReceipt {
  receipt: SignedCheckinReceipt;
  /**
   * The device withdrew from this round because counting it would pass `maxDeviceEpsilon`: it trains and uploads
   * nothing for it whatever its coin said, so the round cannot depend on its data and costs it nothing (the Rényi
   * filter, see `device-accounting.ts`).
   */
  declined: boolean;
  /**
   * Whether the round's coin put this device's update in (selected with input `update`); false when it was not
   * sampled, or added only its noise share with a zero update (`noise-only`, a checked-in cohort). Only such rounds
   * count against the edge, which flips the coins. Absent (kept by an older SDK): counted, the conservative side.
   */
  updateIncluded?: boolean;
}

const EDGE_KEY = "privacy/edge-key";
const RECEIPTS = "privacy/receipts/";

function receiptKey(r: Pick<SignedCheckinReceipt, "model" | "round_id">): string {
  return `${RECEIPTS}${r.model}/${r.round_id}`;
}

export class ReceiptStore {
  private readonly storage: FedgeStorage;
  private readonly baseUrl: string;
  private readonly given: Uint8Array | undefined;
  private readonly fetchKey: () => Promise<string>;
  private pinned: Promise<Uint8Array> | undefined;

  constructor(options: {
    storage: FedgeStorage;
    baseUrl: string;
    /** The app's `edgePublicKey` (wins over anything pinned before). */
    edgePublicKey: Uint8Array | undefined;
    /** Reads `GET /.well-known/fedge-edge-key` (base64url). */
    fetchKey: () => Promise<string>;
  }) {
    this.storage = options.storage;
    this.baseUrl = options.baseUrl;
    this.given = options.edgePublicKey;
    this.fetchKey = options.fetchKey;
  }

  /** The edge key receipts must verify under: the app's, else the one pinned on first use (read now if none). */
  edgeKey(): Promise<Uint8Array> {
    if (this.given) return Promise.resolve(this.given);
    this.pinned ??= this.pinOnFirstUse().catch((err: unknown) => {
      this.pinned = undefined;
      throw err;
    });
    return this.pinned;
  }

  private async pinOnFirstUse(): Promise<Uint8Array> {
    const stored = await getJson<{ baseUrl: string; public_key: string }>(this.storage, EDGE_KEY);
    if (stored && stored.baseUrl === this.baseUrl) return fromBase64Url(stored.public_key);
    const text = await this.fetchKey();
    let key: Uint8Array | undefined;
    try {
      key = fromBase64Url(text);
    } catch {
      key = undefined;
    }
    if (!key || key.length !== 32) {
      throw new UntrustedReceiptError("no_edge_key", "the edge's well-known key is not a 32-byte Ed25519 public key");
    }
    await setJson(this.storage, EDGE_KEY, { baseUrl: this.baseUrl, public_key: toBase64Url(key) });
    return key;
  }

  /**
   * Checks a receipt from a check-in answer: signed by the edge key, for this device, population and (when known)
   * round. Throws `UntrustedReceiptError` otherwise (nothing stored).
   */
  async verify(
    receipt: unknown,
    expected: { model: string; deviceId: string; roundId?: string | undefined },
  ): Promise<SignedCheckinReceipt> {
    const r = receipt as SignedCheckinReceipt;
    if (!r || typeof r !== "object" || r.alg !== "Ed25519" || typeof r.signature !== "string") {
      throw new UntrustedReceiptError("malformed", "the check-in receipt is not a signed Ed25519 receipt");
    }
    let signature: Uint8Array;
    try {
      signature = fromBase64Url(r.signature);
    } catch {
      throw new UntrustedReceiptError("malformed", "the receipt's signature is not base64url");
    }
    if (!(await verifyCheckinReceipt(r, signature, await this.edgeKey()))) {
      throw new UntrustedReceiptError(
        "bad_signature",
        `the receipt for round ${String(r.round_id)} does not verify under the edge key`,
      );
    }
    if (
      r.device_id !== expected.deviceId ||
      r.model !== expected.model ||
      (expected.roundId !== undefined && r.round_id !== expected.roundId)
    ) {
      throw new UntrustedReceiptError(
        "mismatch",
        `the receipt is for ${r.model}/${r.round_id}/${r.device_id}, not this device's check-in to ${expected.model}`,
      );
    }
    return r;
  }

  async get(r: Pick<SignedCheckinReceipt, "model" | "round_id">): Promise<StoredReceipt | undefined> {
    return getJson<StoredReceipt>(this.storage, receiptKey(r));
  }

  async put(entry: StoredReceipt): Promise<void> {
    await setJson(this.storage, receiptKey(entry.receipt), entry);
  }

  /**
   * Every stored receipt of `model` (all populations without one) that still verifies under the edge key, oldest
   * check-in first; anything else in storage is ignored.
   */
  async list(model?: string): Promise<StoredReceipt[]> {
    const keys = await this.storage.keys(model === undefined ? RECEIPTS : `${RECEIPTS}${model}/`);
    if (keys.length === 0) return [];
    const edgeKey = await this.edgeKey();
    const out: StoredReceipt[] = [];
    for (const key of keys) {
      const entry = await getJson<StoredReceipt>(this.storage, key).catch(() => undefined);
      const r = entry?.receipt;
      if (!r || typeof r.signature !== "string") continue;
      let ok = false;
      try {
        ok = await verifyCheckinReceipt(r, fromBase64Url(r.signature), edgeKey);
      } catch {
        ok = false;
      }
      if (ok)
        out.push({ receipt: r, declined: entry.declined === true, updateIncluded: entry.updateIncluded !== false });
    }
    return out.sort((a, b) =>
      a.receipt.checked_in_at < b.receipt.checked_in_at
        ? -1
        : a.receipt.checked_in_at > b.receipt.checked_in_at
          ? 1
          : 0,
    );
  }
}
