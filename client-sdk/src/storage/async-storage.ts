/**
 * @module
 * React Native storage: {@link FedgeStorage} over an AsyncStorage-compatible key-value store
 * (`@react-native-async-storage/async-storage`, or any store with the same four promise methods). Values are the
 * bytes as base64url strings; keys carry a prefix so fedge's entries never collide with the app's. AsyncStorage
 * writes one key atomically, which is all {@link FedgeStorage} asks.
 *
 * @example
 * ```ts
 * import "react-native-get-random-values"; // crypto.getRandomValues, before the SDK is used
 * import AsyncStorage from "@react-native-async-storage/async-storage";
 * import { FedgeClient, asyncStorage } from "@fedge/client";
 *
 * const fedge = new FedgeClient({ baseUrl, apiKey, storage: asyncStorage({ store: AsyncStorage }) });
 * ```
 */
import { fromBase64Url, toBase64Url } from "../internal/encoding.ts";
import { checkStorageKey, type FedgeStorage } from "./storage.ts";

/** The part of the AsyncStorage API the adapter uses. */
export interface AsyncStorageLike {
  getItem(key: string): Promise<string | null | undefined>;
  setItem(key: string, value: string): Promise<void>;
  removeItem(key: string): Promise<void>;
  getAllKeys(): Promise<readonly string[]>;
}

export interface AsyncStorageOptions {
  /** The store, e.g. the default export of `@react-native-async-storage/async-storage`. */
  store: AsyncStorageLike;
  /**
   * Prefix of fedge's keys in the store.
   * @default "fedge:"
   */
  prefix?: string;
}

/**
 * Storage in an AsyncStorage-compatible store (React Native): the device identity, cached models and the offline
 * queue survive app restarts. Pass it as `storage` to `FedgeClient`.
 */
export function asyncStorage(options: AsyncStorageOptions): FedgeStorage {
  const store = options?.store;
  for (const m of ["getItem", "setItem", "removeItem", "getAllKeys"] as const) {
    if (typeof store?.[m] !== "function") {
      throw new TypeError(`asyncStorage: store must have the AsyncStorage method ${m}() (options.store)`);
    }
  }
  const prefix = options.prefix ?? "fedge:";
  if (typeof prefix !== "string") throw new TypeError("asyncStorage: prefix must be a string (options.prefix)");
  return {
    async get(key) {
      checkStorageKey(key);
      const v = await store.getItem(prefix + key);
      return v === null || v === undefined ? undefined : fromBase64Url(v);
    },
    async set(key, value) {
      checkStorageKey(key);
      await store.setItem(prefix + key, toBase64Url(value));
    },
    async delete(key) {
      checkStorageKey(key);
      await store.removeItem(prefix + key);
    },
    async keys(p) {
      const all = await store.getAllKeys();
      return all.filter((k) => k.startsWith(prefix + p)).map((k) => k.slice(prefix.length));
    },
  };
}
