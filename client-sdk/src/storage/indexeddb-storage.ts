/**
 * @module
 * Browser storage: one IndexedDB object store of `key → Uint8Array`. Each call is its own transaction, which
 * IndexedDB makes atomic and durable. It also keeps WebCrypto key pairs as objects (`CryptoKeyStore`): a
 * non-extractable private key is stored by structured clone and stays non-extractable.
 */
import type { CryptoKeyStore, FedgeStorage } from "./storage.ts";
import { checkStorageKey } from "./storage.ts";

export interface IndexedDbStorageOptions {
  /** Database name. @default "fedge" */
  database?: string;
  /** Object store name. @default "kv" */
  store?: string;
}

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

/** Storage in IndexedDB (browsers). Throws on first use where IndexedDB is missing. */
export function indexedDbStorage(options: IndexedDbStorageOptions = {}): FedgeStorage & CryptoKeyStore {
  const database = options.database ?? "fedge";
  const store = options.store ?? "kv";
  let db: Promise<IDBDatabase> | undefined;
  const open = () =>
    (db ??= new Promise<IDBDatabase>((resolve, reject) => {
      if (typeof indexedDB === "undefined") return reject(new Error("IndexedDB is not available in this runtime"));
      const r = indexedDB.open(database, 1);
      r.onupgradeneeded = () => {
        if (!r.result.objectStoreNames.contains(store)) r.result.createObjectStore(store);
      };
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    }));
  const run = async <T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> => {
    const tx = (await open()).transaction(store, mode);
    const done = new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
    done.catch(() => undefined); // observed below; avoids an unhandled rejection if the request fails first
    const result = await req(fn(tx.objectStore(store)));
    await done;
    return result;
  };
  return {
    async get(key) {
      checkStorageKey(key);
      const v = await run("readonly", (s) => s.get(key) as IDBRequest<Uint8Array | undefined>);
      return v === undefined ? undefined : new Uint8Array(v);
    },
    async set(key, value) {
      checkStorageKey(key);
      await run("readwrite", (s) => s.put(value.slice(), key));
    },
    async delete(key) {
      checkStorageKey(key);
      await run("readwrite", (s) => s.delete(key));
    },
    async keys(prefix) {
      const all = await run("readonly", (s) => s.getAllKeys());
      return all.map(String).filter((k) => k.startsWith(prefix));
    },
    async getKeyPair(key) {
      checkStorageKey(key);
      const v = await run("readonly", (s) => s.get(key) as IDBRequest<CryptoKeyPair | undefined>);
      return v && typeof v === "object" && "privateKey" in v ? v : undefined;
    },
    async setKeyPair(key, pair) {
      checkStorageKey(key);
      await run("readwrite", (s) => s.put(pair, key));
    },
  };
}
