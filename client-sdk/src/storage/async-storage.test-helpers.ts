/**
 * TEST-ONLY: a fake AsyncStorage, an in-memory object with the API of `@react-native-async-storage/async-storage`
 * (string values only, as the real one: anything else is refused).
 */
import type { AsyncStorageLike } from "./async-storage.ts";

export interface FakeAsyncStorage extends AsyncStorageLike {
  /** The raw entries, as the app's other code would see them. */
  readonly entries: Map<string, string>;
}

export function fakeAsyncStorage(entries = new Map<string, string>()): FakeAsyncStorage {
  return {
    entries,
    async getItem(key) {
      return entries.get(key) ?? null;
    },
    async setItem(key, value) {
      if (typeof value !== "string") throw new TypeError(`AsyncStorage only stores strings (key ${key})`);
      entries.set(key, value);
    },
    async removeItem(key) {
      entries.delete(key);
    },
    async getAllKeys() {
      return [...entries.keys()];
    },
  };
}
