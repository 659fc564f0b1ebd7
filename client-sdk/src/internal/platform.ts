/**
 * @module
 * The runtime differences between browsers, Node and React Native, kept in one place: which runtime this is, the
 * `fetch` to use, and the CSPRNG (`crypto.getRandomValues`). React Native has neither IndexedDB nor (without the
 * `react-native-get-random-values` polyfill) `crypto.getRandomValues`: pass `random` and `storage` there.
 */

/** Fills `buf` with cryptographically secure random bytes. */
export type RandomSource = (buf: Uint8Array) => void;

export type Runtime = "browser" | "node" | "react-native" | "unknown";

/** Which runtime the SDK runs in (by feature detection, no user-agent sniffing). */
export function detectRuntime(): Runtime {
  const g = globalThis as { navigator?: { product?: string }; process?: { versions?: { node?: string } } };
  if (g.navigator?.product === "ReactNative") return "react-native";
  if (typeof g.process?.versions?.node === "string") return "node";
  if (typeof (globalThis as { window?: unknown }).window !== "undefined" || typeof indexedDB !== "undefined") {
    return "browser";
  }
  return "unknown";
}

const MAX_GET_RANDOM = 65536;

/** `crypto.getRandomValues` in chunks of 65,536 bytes; throws a clear error where the runtime lacks it. */
export const cryptoRandom: RandomSource = (buf) => {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (!c || typeof c.getRandomValues !== "function") {
    throw new Error(
      "crypto.getRandomValues is not available: install a polyfill (React Native: react-native-get-random-values) or pass `random`",
    );
  }
  for (let off = 0; off < buf.length; off += MAX_GET_RANDOM) {
    c.getRandomValues(buf.subarray(off, Math.min(buf.length, off + MAX_GET_RANDOM)) as Uint8Array<ArrayBuffer>);
  }
};

/** `n` fresh random bytes from `random`. */
export function randomBytes(random: RandomSource, n: number): Uint8Array {
  const out = new Uint8Array(n);
  random(out);
  return out;
}

/** A uniform double in [0, 1) with 53 random bits from `random`. */
export function uniform(random: RandomSource): number {
  const w = new Uint32Array(2);
  random(new Uint8Array(w.buffer));
  return ((w[0]! >>> 5) * 67108864 + (w[1]! >>> 6)) / 9007199254740992;
}

/** The global `fetch`, bound (some runtimes throw "Illegal invocation" on an unbound call). */
export function defaultFetch(): typeof fetch {
  if (typeof globalThis.fetch !== "function") {
    throw new Error("no global fetch in this runtime: pass `fetch` to FedgeClient");
  }
  return globalThis.fetch.bind(globalThis);
}
