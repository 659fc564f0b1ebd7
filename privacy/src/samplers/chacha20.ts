/**
 * @module
 * The ChaCha20 keystream (RFC 8439 §2.3, 20 rounds, 32-bit block counter) as a {@link RandomBytes}: a deterministic
 * stream of bytes under a 256-bit key. It expands a PUBLIC shared seed into bits that every party derives alike (the
 * distributed mode's per-round rotation, `distributed/rotation.ts`); it is never a source of privacy noise, which
 * comes only from `crypto.getRandomValues`.
 */
import type { RandomBytes } from "./random.ts";

/** "expand 32-byte k" (RFC 8439 §2.3). */
const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574] as const;

function rotl(x: number, n: number): number {
  return (x << n) | (x >>> (32 - n));
}

function quarterRound(x: Uint32Array, a: number, b: number, c: number, d: number): void {
  x[a] = (x[a]! + x[b]!) | 0;
  x[d] = rotl(x[d]! ^ x[a]!, 16);
  x[c] = (x[c]! + x[d]!) | 0;
  x[b] = rotl(x[b]! ^ x[c]!, 12);
  x[a] = (x[a]! + x[b]!) | 0;
  x[d] = rotl(x[d]! ^ x[a]!, 8);
  x[c] = (x[c]! + x[d]!) | 0;
  x[b] = rotl(x[b]! ^ x[c]!, 7);
}

/** Little-endian 32-bit words of `bytes` (length a multiple of 4). */
function wordsLE(bytes: Uint8Array): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.length / 4 }, (_, i) => view.getUint32(4 * i, true));
}

/**
 * The ChaCha20 keystream under `key` (32 bytes) and `nonce` (12 bytes, default zeros), block counter from
 * `counter` (default 0), as a {@link RandomBytes} that continues the stream on every call. Throws `RangeError` on a
 * key or nonce of the wrong length, or once the 2³² blocks of one nonce are used up.
 */
export function chacha20Stream(key: Uint8Array, nonce: Uint8Array = new Uint8Array(12), counter = 0): RandomBytes {
  if (!(key instanceof Uint8Array) || key.length !== 32) throw new RangeError("ChaCha20 key must be 32 bytes");
  if (!(nonce instanceof Uint8Array) || nonce.length !== 12) throw new RangeError("ChaCha20 nonce must be 12 bytes");
  if (!Number.isSafeInteger(counter) || counter < 0 || counter > 0xffffffff) {
    throw new RangeError(`ChaCha20 counter must be an integer in [0, 2^32), got ${counter}`);
  }
  const state = new Uint32Array(16);
  state.set(SIGMA);
  state.set(wordsLE(key), 4);
  state[12] = counter;
  state.set(wordsLE(nonce), 13);
  const x = new Uint32Array(16);
  const block = new Uint8Array(x.buffer);
  let blocksLeft = 2 ** 32 - counter;
  let avail = 0;
  const next = (): void => {
    if (blocksLeft === 0) throw new RangeError("ChaCha20 keystream exhausted for this nonce");
    x.set(state);
    for (let i = 0; i < 10; i++) {
      quarterRound(x, 0, 4, 8, 12);
      quarterRound(x, 1, 5, 9, 13);
      quarterRound(x, 2, 6, 10, 14);
      quarterRound(x, 3, 7, 11, 15);
      quarterRound(x, 0, 5, 10, 15);
      quarterRound(x, 1, 6, 11, 12);
      quarterRound(x, 2, 7, 8, 13);
      quarterRound(x, 3, 4, 9, 14);
    }
    for (let i = 0; i < 16; i++) x[i] = (x[i]! + state[i]!) >>> 0;
    // Serialise little-endian whatever the platform's byte order (RFC 8439 §2.3).
    const view = new DataView(block.buffer);
    for (let i = 0; i < 16; i++) view.setUint32(4 * i, x[i]!, true);
    state[12] = (state[12]! + 1) >>> 0;
    blocksLeft--;
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
