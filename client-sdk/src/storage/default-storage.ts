/**
 * @module
 * The storage a client uses when none is given: IndexedDB in browsers, files under `~/.fedge/<host>` in Node (node:os
 * and node:path are imported lazily, so browser bundles never load them), memory elsewhere. React Native has no
 * store the SDK could import on its own: pass `asyncStorage({ store: AsyncStorage })`; without it the identity and
 * the offline queue live in memory, and a warning says so once.
 */
import { detectRuntime } from "../internal/platform.ts";
import { fileStorage } from "./file-storage.ts";
import { indexedDbStorage } from "./indexeddb-storage.ts";
import { memoryStorage, type FedgeStorage } from "./storage.ts";

/** The default storage for this runtime. */
export function defaultStorage(baseUrl: string): FedgeStorage {
  const runtime = detectRuntime();
  if (runtime === "browser" && typeof indexedDB !== "undefined") return indexedDbStorage();
  if (runtime === "node") {
    const host = new URL(baseUrl).host.replace(/[^A-Za-z0-9.-]/g, "_");
    let inner: Promise<FedgeStorage> | undefined;
    const get = () =>
      (inner ??= Promise.all([import("node:os"), import("node:path")]).then(([os, path]) =>
        fileStorage(path.join(os.homedir(), ".fedge", host)),
      ));
    return {
      get: async (k) => (await get()).get(k),
      set: async (k, v) => (await get()).set(k, v),
      delete: async (k) => (await get()).delete(k),
      keys: async (p) => (await get()).keys(p),
    };
  }
  if (runtime === "react-native" && !warnedMemory) {
    warnedMemory = true;
    console.warn(
      "@fedge/client: no `storage` given on React Native, so the device identity and the offline queue live in memory " +
        "and are lost on restart; pass `storage: asyncStorage({ store: AsyncStorage })`",
    );
  }
  return memoryStorage();
}

let warnedMemory = false;
