/**
 * @module
 * Trust pinning of model versions: the aggregator signs every manifest it exports with its Ed25519 key over the
 * canonical JSON of the manifest without its `aggregator` field (sorted keys, no whitespace, `undefined` left out:
 * @fedge/protocol `canonicalManifestBytes`; aggregator `export/`). A client that pins that key accepts a version only
 * when its manifest carries a signature by the pinned key that verifies, names the model and version asked for, and
 * states the sha256 of the bytes downloaded. The canonical JSON is repeated here (`trust.test.ts` pins it to the
 * protocol's) so that zod stays out of the SDK core.
 */
import type { ModelManifest } from "@fedge/protocol";
import nacl from "tweetnacl";
import { UntrustedModelError } from "./core/errors.ts";
import { fromBase64Url } from "./internal/encoding.ts";

/** Deterministic JSON (sorted keys, no whitespace, undefined members left out): @fedge/protocol `canonicalJson`. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/** The bytes the aggregator signs: the manifest without `aggregator`, as canonical JSON. */
export function canonicalManifestBytes(manifest: ModelManifest): Uint8Array {
  const { aggregator: _signature, ...rest } = manifest;
  return new TextEncoder().encode(canonicalJson(rest));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/**
 * Throws `UntrustedModelError` unless `manifest` is signed by `pinnedKey` and describes `model` version `version` with
 * `sha256` (lowercase hex of the downloaded bytes; `undefined` where the runtime cannot hash, which is refused too).
 */
export function verifyPinnedManifest(
  manifest: ModelManifest | undefined,
  pinnedKey: Uint8Array,
  expected: { model: string; version: number; sha256: string | undefined },
): void {
  const what = `model ${expected.model} v${expected.version}`;
  if (!manifest) throw new UntrustedModelError("unsigned", `${what} has no manifest to verify`);
  const sig = manifest.aggregator;
  if (!sig || typeof sig.public_key !== "string" || typeof sig.signature !== "string") {
    throw new UntrustedModelError("unsigned", `${what}: the manifest is not signed by an aggregator`);
  }
  let publicKey: Uint8Array;
  let signature: Uint8Array;
  try {
    publicKey = fromBase64Url(sig.public_key);
    signature = fromBase64Url(sig.signature);
  } catch {
    throw new UntrustedModelError("bad_signature", `${what}: the manifest's signature fields are not base64url`);
  }
  if (!equalBytes(publicKey, pinnedKey)) {
    throw new UntrustedModelError(
      "wrong_key",
      `${what}: the manifest is signed by ${sig.public_key}, not by the pinned aggregator key`,
    );
  }
  if (signature.length !== 64 || !nacl.sign.detached.verify(canonicalManifestBytes(manifest), signature, pinnedKey)) {
    throw new UntrustedModelError(
      "bad_signature",
      `${what}: the manifest's signature does not verify under the pinned aggregator key`,
    );
  }
  if (manifest.name !== expected.model || manifest.version !== expected.version) {
    throw new UntrustedModelError(
      "mismatch",
      `${what}: the signed manifest is for ${manifest.name} v${manifest.version}`,
    );
  }
  if (expected.sha256 === undefined) {
    throw new UntrustedModelError(
      "integrity_unavailable",
      `${what}: this runtime has no crypto.subtle to hash the model, so it cannot be checked against the pinned key`,
    );
  }
  if (manifest.sha256 !== expected.sha256) {
    throw new UntrustedModelError(
      "mismatch",
      `${what}: the bytes hash to ${expected.sha256}, the signed manifest says ${manifest.sha256}`,
    );
  }
}
