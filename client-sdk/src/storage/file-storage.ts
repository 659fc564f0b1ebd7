/**
 * @module
 * Node storage: one file per key under a directory (`/` in keys becomes a sub-directory). Writes go to a temporary
 * file that is fsynced and then renamed over the target (and the directory fsynced), so a crash leaves the old or the
 * new value, never a torn or lost one. The storage holds the device's secret key: directories are created 0700 and
 * files 0600 (owner only; the root directory is tightened to 0700 on the first write).
 * `node:fs` is imported lazily, so this module can sit in a browser bundle without being used there.
 */
import type { FedgeStorage } from "./storage.ts";
import { checkStorageKey } from "./storage.ts";

export interface FileStorageOptions {
  /** Directory that holds the files; created on first write. */
  dir: string;
}

type Fs = typeof import("node:fs/promises");
type PathMod = typeof import("node:path");

/** Storage in the files of `dir` (Node only). */
export function fileStorage(options: FileStorageOptions | string): FedgeStorage {
  const dir = typeof options === "string" ? options : options.dir;
  if (typeof dir !== "string" || dir.length === 0) throw new TypeError("fileStorage: dir must be a non-empty path");
  let mods: Promise<[Fs, PathMod]> | undefined;
  const load = () => (mods ??= Promise.all([import("node:fs/promises"), import("node:path")]));
  const fileOf = async (key: string) => {
    checkStorageKey(key);
    const [, path] = await load();
    return path.join(dir, ...key.split("/"));
  };
  let tmpCounter = 0;
  let rootTightened = false;
  return {
    async get(key) {
      const [fs] = await load();
      try {
        return new Uint8Array(await fs.readFile(await fileOf(key)));
      } catch (err) {
        if ((err as { code?: string }).code === "ENOENT") return undefined;
        throw err;
      }
    },
    async set(key, value) {
      const [fs, path] = await load();
      const file = await fileOf(key);
      const parent = path.dirname(file);
      await fs.mkdir(parent, { recursive: true, mode: 0o700 });
      if (!rootTightened) {
        // A directory made by an older version (or by hand) may be readable by others.
        await fs.chmod(dir, 0o700);
        rootTightened = true;
      }
      const tmp = `${file}.tmp-${process.pid}-${tmpCounter++}`;
      const fh = await fs.open(tmp, "w", 0o600);
      try {
        await fh.writeFile(value);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.rename(tmp, file);
      // The rename is durable once its directory is synced (not every platform can open a directory).
      try {
        const dh = await fs.open(parent, "r");
        try {
          await dh.sync();
        } finally {
          await dh.close();
        }
      } catch {
        /* best effort */
      }
    },
    async delete(key) {
      const [fs] = await load();
      await fs.rm(await fileOf(key), { force: true });
    },
    async keys(prefix) {
      const [fs, path] = await load();
      let entries: string[];
      try {
        entries = (await fs.readdir(dir, { recursive: true, withFileTypes: true }))
          .filter((e) => e.isFile() && !e.name.includes(".tmp-"))
          .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join("/"));
      } catch (err) {
        if ((err as { code?: string }).code === "ENOENT") return [];
        throw err;
      }
      return entries.filter((k) => k.startsWith(prefix));
    },
  };
}
