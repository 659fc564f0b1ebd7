/**
 * @module
 * TEST-ONLY deterministic byte source: the ChaCha20 keystream (RFC 8439 §2.3) under a key derived from a public seed.
 * It is a good generator but its seed is known, so it must never feed production noise; it exists so statistical
 * tests are reproducible. Import it as `@fedge/protocol/random/testing`; it is deliberately not exported from the
 * package root.
 */
import type { RandomBytes } from "./random.ts";
import { chacha20Stream } from "./chacha20.ts";

/** A deterministic {@link RandomBytes}: ChaCha20 with key = (seed, 0, …), nonce 0, counter from 0. Test use only. */
export function seededRandomBytes(seed: number): RandomBytes {
  const key = new Uint8Array(32);
  const view = new DataView(key.buffer);
  view.setUint32(0, seed >>> 0, true);
  view.setUint32(4, Math.floor(seed / 4294967296) >>> 0, true);
  return chacha20Stream(key);
}
