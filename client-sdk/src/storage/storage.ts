/**
 * @module
 * Key-value storage for what the SDK must keep across restarts: the device identity, cached model bytes and the
 * offline upload queue. One small async interface, four implementations: IndexedDB (browsers), a directory of
 * files (Node), an AsyncStorage-compatible store (React Native, `asyncStorage`), memory (tests, ephemeral use).
 */

/**
 * Async byte storage. Keys are short printable strings with `/` as a separator (`device/identity`,
 * `queue/<round>`, `models/<name>/<version>`). `set` must be atomic per key: after a crash a key holds either its old
 * or its new value, never a torn one.
 */
export interface FedgeStorage {
  get(key: string): Promise<Uint8Array | undefined>;
  set(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  /** Every key that starts with `prefix`, in any order. */
  keys(prefix: string): Promise<string[]>;
}

/**
 * A storage that can also keep a WebCrypto key pair as an object (IndexedDB does, by structured clone), so a
 * non-extractable private key is stored without ever existing as bytes the page could read.
 */
export interface CryptoKeyStore {
  getKeyPair(key: string): Promise<CryptoKeyPair | undefined>;
  setKeyPair(key: string, pair: CryptoKeyPair): Promise<void>;
}

/** Whether `storage` can keep WebCrypto key pairs. */
export function hasKeyStore(storage: FedgeStorage): storage is FedgeStorage & CryptoKeyStore {
  const s = storage as Partial<CryptoKeyStore>;
  return typeof s.getKeyPair === "function" && typeof s.setKeyPair === "function";
}

/** The storage the offline queue writes to; any {@link FedgeStorage} works (the pluggable seam for React Native). */
export type QueueStorage = FedgeStorage;

const KEY_RE = /^[A-Za-z0-9._~/-]{1,200}$/;

/** Throws a TypeError unless `key` is a valid storage key. */
export function checkStorageKey(key: string): void {
  if (typeof key !== "string" || !KEY_RE.test(key)) {
    throw new TypeError(`invalid storage key ${JSON.stringify(key)}: 1-200 chars of [A-Za-z0-9._~/-]`);
  }
  if (key.split("/").some((part) => part === "" || part === "." || part === "..")) {
    throw new TypeError(`invalid storage key ${JSON.stringify(key)}: empty, "." or ".." segment`);
  }
}

/** Storage in a Map: lives as long as the object. Values are copied in and out. */
export function memoryStorage(): FedgeStorage {
  const map = new Map<string, Uint8Array>();
  return {
    async get(key) {
      checkStorageKey(key);
      const v = map.get(key);
      return v ? v.slice() : undefined;
    },
    async set(key, value) {
      checkStorageKey(key);
      map.set(key, value.slice());
    },
    async delete(key) {
      checkStorageKey(key);
      map.delete(key);
    },
    async keys(prefix) {
      return [...map.keys()].filter((k) => k.startsWith(prefix));
    },
  };
}

/** UTF-8 JSON helpers over byte storage. */
export async function getJson<T>(storage: FedgeStorage, key: string): Promise<T | undefined> {
  const bytes = await storage.get(key);
  if (!bytes) return undefined;
  return JSON.parse(new TextDecoder().decode(bytes)) as T;
}

export async function setJson(storage: FedgeStorage, key: string, value: unknown): Promise<void> {
  await storage.set(key, new TextEncoder().encode(JSON.stringify(value)));
}
