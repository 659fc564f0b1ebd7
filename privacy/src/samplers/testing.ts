/**
 * @module
 * TEST-ONLY deterministic byte source: the ChaCha20 keystream (RFC 8439 §2.3) under a key derived from a public seed.
 * It is a good generator but its seed is known, so it must never feed production noise; it exists so statistical
 * tests are reproducible. Import it as `@fedge/protocol/random/testing`; it is deliberately not exported from the
 * package root.
 */
import type { RandomBytes } from "./random.ts";

function rotl(x: number, n: number): number {
  return (x << n) | (x >>> (32 - n));
}

/** A deterministic {@link RandomBytes}: ChaCha20 with key = (seed, 0, …), nonce 0, counter from 0. Test use only. */
export function seededRandomBytes(seed: number): RandomBytes {
  const state = new Uint32Array(16);
  state.set([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);
  state[4] = seed >>> 0;
  state[5] = Math.floor(seed / 4294967296) >>> 0;
  const x = new Uint32Array(16);
  const block = new Uint8Array(x.buffer);
  let avail = 0;
  const next = (): void => {
    x.set(state);
    for (let i = 0; i < 10; i++) {
      // column rounds then diagonal rounds (RFC 8439 §2.1–2.3)
      qr(x, 0, 4, 8, 12);
      qr(x, 1, 5, 9, 13);
      qr(x, 2, 6, 10, 14);
      qr(x, 3, 7, 11, 15);
      qr(x, 0, 5, 10, 15);
      qr(x, 1, 6, 11, 12);
      qr(x, 2, 7, 8, 13);
      qr(x, 3, 4, 9, 14);
    }
    for (let i = 0; i < 16; i++) x[i] = (x[i]! + state[i]!) >>> 0;
    state[12] = (state[12]! + 1) >>> 0;
    if (state[12] === 0) state[13] = (state[13]! + 1) >>> 0;
    avail = 64;
  };
  return (buf: Uint8Array): void => {
    let off = 0;
    while (off < buf.length) {
      if (avail === 0) next();
      const n = Math.min(avail, buf.length - off);
      buf.set(block.subarray(64 - avail, 64 - avail + n), off);
      avail -= n;
      off += n;
    }
  };
}

function qr(x: Uint32Array, a: number, b: number, c: number, d: number): void {
  x[a] = (x[a]! + x[b]!) | 0;
  x[d] = rotl(x[d]! ^ x[a]!, 16);
  x[c] = (x[c]! + x[d]!) | 0;
  x[b] = rotl(x[b]! ^ x[c]!, 12);
  x[a] = (x[a]! + x[b]!) | 0;
  x[d] = rotl(x[d]! ^ x[a]!, 8);
  x[c] = (x[c]! + x[d]!) | 0;
  x[b] = rotl(x[b]! ^ x[c]!, 7);
}
