/**
 * @module
 * Check-in receipts: at every check-in for a differentially private round the edge signs, with its own Ed25519 key
 * (`FEDGE_EDGE_SIGNING_KEY`, public key at `GET /.well-known/fedge-edge-key`), what the device's coin was flipped
 * for: population, round, q, z, σ_b, mode, clip rule, the population's δ, device and time (and a distributed round's
 * discrete noise). A device's privacy loss
 * accrues in every round it checked in for, selected or not (Poisson subsampling: the coin is the mechanism's
 * randomness, not a choice of the device), so these receipts are exactly what the device's own accountant needs.
 *
 * This file holds the canonical signing bytes, the one definition the edge (signer) and the SDK (verifier) share.
 * It imports no zod (the schema `CheckinReceipt` is in `checkin.ts`), so the SDK can import it through
 * `@fedge/protocol/receipt` without zod entering its bundle.
 */
import nacl from "tweetnacl";

/** The signature algorithm of receipts and the edge key. */
export const EDGE_KEY_ALG = "Ed25519" as const;

/** Where the edge serves its receipt public key (`EdgeKeyResponse`). */
export const EDGE_KEY_PATH = "/.well-known/fedge-edge-key";

/** What a check-in receipt states (every field is signed). */
export interface CheckinReceiptBody {
  /** The population (model name). */
  model: string;
  round_id: string;
  device_id: string;
  /** q, the round's Poisson sampling rate. */
  sampling_rate: number;
  /** z, the total noise multiplier the population's ledger was charged. */
  noise_multiplier: number;
  /** σ_b with adaptive clipping, else null. */
  count_noise_std: number | null;
  privacy_mode: "central" | "local" | "distributed";
  clip_rule: "fixed" | "adaptive";
  /** The population budget's δ when the device checked in (the δ its ledger reports ε at). */
  delta: number;
  /** When the edge recorded the device's (first) check-in of the round, ISO 8601 UTC with milliseconds. */
  checked_in_at: string;
  /**
   * Mode `distributed` only (required there): the discrete noise the round was charged for (KLS21's bound counts
   * `noise_shares − 1 − corrupt_devices` shares of variance `share_variance` in `dimension` coordinates, sensitivity
   * √`sensitivity_bound`).
   */
  distributed_noise?: ReceiptDistributedNoise | undefined;
}

/** What a distributed round's receipt states about its discrete noise (the numbers the device's accountant needs). */
export interface ReceiptDistributedNoise {
  dimension: number;
  noise_shares: number;
  share_variance: number;
  sensitivity_bound: number;
  /** The most colluding devices (absent: 0, and then not signed, so receipts without it keep their bytes). */
  corrupt_devices?: number | undefined;
  /** Who added noise shares (`DistributedNoise.cohort`; absent: `sampled`, and then not signed). */
  cohort?: "sampled" | "checked-in" | undefined;
}

/** A receipt as it travels: the body plus the edge's detached Ed25519 signature (base64url, 64 bytes). */
export interface SignedCheckinReceipt extends CheckinReceiptBody {
  alg: typeof EDGE_KEY_ALG;
  signature: string;
}

const RECEIPT_DOMAIN = "fedge-checkin-receipt-v1";

function text(name: string, v: unknown): string {
  if (typeof v !== "string" || v.length === 0 || /[\n\r]/.test(v)) {
    throw new TypeError(`receipt ${name} must be a non-empty single-line string`);
  }
  return v;
}

function num(name: string, v: unknown): string {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new TypeError(`receipt ${name} must be a finite number`);
  // ECMAScript Number::toString: the shortest round-tripping decimal, the same in every engine.
  return String(v);
}

function cohort(v: unknown): string {
  if (v !== "sampled" && v !== "checked-in") {
    throw new TypeError(`receipt distributed_noise.cohort must be "sampled" or "checked-in", got ${String(v)}`);
  }
  return v;
}

/**
 * The bytes the edge signs: a domain-separated, newline-joined line per field, in this fixed order (numbers as
 * ECMAScript's shortest round-trip decimal, σ_b `-` when null). Fields outside `CheckinReceiptBody` (such as
 * `signature`) are not signed and ignored. Throws a TypeError for a field that cannot be encoded unambiguously.
 */
export function checkinReceiptSigningBytes(r: CheckinReceiptBody): Uint8Array {
  const lines = [
    RECEIPT_DOMAIN,
    text("model", r.model),
    text("round_id", r.round_id),
    text("device_id", r.device_id),
    num("sampling_rate", r.sampling_rate),
    num("noise_multiplier", r.noise_multiplier),
    r.count_noise_std === null ? "-" : num("count_noise_std", r.count_noise_std),
    text("privacy_mode", r.privacy_mode),
    text("clip_rule", r.clip_rule),
    num("delta", r.delta),
    text("checked_in_at", r.checked_in_at),
  ];
  // Receipts of the other modes keep their bytes; a distributed round's receipt signs its noise on one more line.
  if (r.privacy_mode === "distributed") {
    const n = r.distributed_noise;
    if (n === undefined || n === null || typeof n !== "object") {
      throw new TypeError("receipt distributed_noise is required in privacy mode distributed");
    }
    lines.push(
      [
        num("distributed_noise.dimension", n.dimension),
        num("distributed_noise.noise_shares", n.noise_shares),
        num("distributed_noise.share_variance", n.share_variance),
        num("distributed_noise.sensitivity_bound", n.sensitivity_bound),
        ...(n.corrupt_devices !== undefined ? [num("distributed_noise.corrupt_devices", n.corrupt_devices)] : []),
        // A word, never a number, so it cannot be read as corrupt_devices.
        ...(n.cohort !== undefined ? [cohort(n.cohort)] : []),
      ].join(" "),
    );
  } else if (r.distributed_noise !== undefined) {
    throw new TypeError("receipt distributed_noise is only allowed in privacy mode distributed");
  }
  return new TextEncoder().encode(lines.join("\n"));
}

/** The edge's detached signature over `checkinReceiptSigningBytes(body)` (`secretKey`: tweetnacl's 64 bytes). */
export function signCheckinReceipt(body: CheckinReceiptBody, secretKey: Uint8Array): Uint8Array {
  return nacl.sign.detached(checkinReceiptSigningBytes(body), secretKey);
}

/**
 * Whether `signature` is the edge key `publicKey`'s signature over `body` (false for any malformed input). Ed25519 runs
 * in WebCrypto where the runtime has it (browsers, Node ≥ 20, workerd): a device checks a receipt at every check-in and
 * re-checks its stored ones, and tweetnacl's verify costs it milliseconds of CPU each; elsewhere (Hermes without a
 * polyfill) tweetnacl verifies. Both implement RFC 8032, so they agree on every well-formed signature.
 */
export async function verifyCheckinReceipt(
  body: CheckinReceiptBody,
  signature: Uint8Array,
  publicKey: Uint8Array,
): Promise<boolean> {
  if (signature.length !== nacl.sign.signatureLength || publicKey.length !== nacl.sign.publicKeyLength) return false;
  let bytes: Uint8Array;
  try {
    bytes = checkinReceiptSigningBytes(body);
  } catch {
    return false;
  }
  const key = await webCryptoKey(publicKey);
  if (key) {
    try {
      return await key.subtle.verify("Ed25519", key.key, new Uint8Array(signature), bytes as Uint8Array<ArrayBuffer>);
    } catch {
      return false;
    }
  }
  return nacl.sign.detached.verify(bytes, signature, publicKey);
}

/** The last public key imported into WebCrypto (a device verifies every receipt under the same edge key). */
let imported: { raw: string; key: Promise<CryptoKey | null> } | null = null;

/** `publicKey` as a WebCrypto Ed25519 verify key, or `null` where the runtime has no Ed25519 in WebCrypto. */
async function webCryptoKey(publicKey: Uint8Array): Promise<{ subtle: SubtleCrypto; key: CryptoKey } | null> {
  const subtle = (globalThis as { crypto?: Crypto }).crypto?.subtle;
  if (!subtle || typeof subtle.importKey !== "function") return null;
  const raw = publicKey.join(",");
  if (imported?.raw !== raw) {
    imported = {
      raw,
      key: subtle.importKey("raw", new Uint8Array(publicKey), { name: "Ed25519" }, false, ["verify"]).catch(() => null),
    };
  }
  const key = await imported.key;
  return key ? { subtle, key } : null;
}

/**
 * The bytes a device signs to read what the edge recorded for it (`GET /v1/devices/:id/privacy`, headers
 * `x-fedge-timestamp` and `x-fedge-signature`): domain-separated like `checkinSigningBytes`.
 */
export function devicePrivacySigningBytes(deviceId: string, timestamp: string): Uint8Array {
  return new TextEncoder().encode(
    `fedge-device-privacy-v1\n${text("device_id", deviceId)}\n${text("timestamp", timestamp)}`,
  );
}
