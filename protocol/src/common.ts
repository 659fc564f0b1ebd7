/**
 * @module
 * Small shared wire primitives.
 */
import { z } from "zod";

/** Model and population names: lowercase slug, used in URLs and Durable Object names. */
export const ModelName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "lowercase letters, digits and dashes; at most 63 characters");

export const ModelVersion = z.number().int().min(1);

/** Unpadded base64url (RFC 4648 §5), used for keys, nonces and signatures in JSON. */
export const Base64Url = z.string().regex(/^[A-Za-z0-9_-]*$/, "base64url without padding");

export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "lowercase hex SHA-256");

export const IsoDateTime = z.iso.datetime({ offset: true });

/** A tensor shape (rank 0 to 8); `null` marks a dynamic dimension (the batch, a sequence length, …). */
export const TensorShape = z.array(z.number().int().positive().nullable()).max(8);

export function toBase64Url(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]!);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * The one base64url spelling of a 32-byte key (an Ed25519 public key), or null when `text` is not 43 base64url
 * characters. 43 characters carry 258 bits, so the last one has 2 spare bits: four strings decode to the same key.
 * Anything that stores or compares keys as strings uses this form, so one key is one string.
 */
export function canonicalKey32(text: string): string | null {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]{43}$/.test(text)) return null;
  const bytes = fromBase64Url(text);
  return bytes.length === 32 ? toBase64Url(bytes) : null;
}

export function fromBase64Url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
