import { chmod, mkdir, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { asyncStorage } from "./async-storage.ts";
import { fakeAsyncStorage } from "./async-storage.test-helpers.ts";
import { fileStorage } from "./file-storage.ts";
import { getJson, memoryStorage, setJson, type FedgeStorage } from "./storage.ts";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tempDir() {
  const d = await mkdtemp(path.join(tmpdir(), "fedge-storage-"));
  dirs.push(d);
  return d;
}

const suites: [string, () => Promise<FedgeStorage>][] = [
  ["memoryStorage", async () => memoryStorage()],
  ["fileStorage", async () => fileStorage({ dir: path.join(await tempDir(), "nested") })],
  ["asyncStorage", async () => asyncStorage({ store: fakeAsyncStorage() })],
];

describe.each(suites)("%s", (_name, make) => {
  it("stores, lists and deletes bytes by key", async () => {
    const s = await make();
    expect(await s.get("a/b")).toBeUndefined();
    expect(await s.keys("")).toEqual([]);
    await s.set("queue/r_1", new Uint8Array([1, 2, 3]));
    await s.set("queue/r_2", new Uint8Array([]));
    await s.set("device/identity", new Uint8Array([9]));
    expect([...(await s.get("queue/r_1"))!]).toEqual([1, 2, 3]);
    expect((await s.get("queue/r_2"))!.length).toBe(0);
    expect((await s.keys("queue/")).sort()).toEqual(["queue/r_1", "queue/r_2"]);
    await s.set("queue/r_1", new Uint8Array([4]));
    expect([...(await s.get("queue/r_1"))!]).toEqual([4]);
    await s.delete("queue/r_1");
    await s.delete("queue/never");
    expect(await s.get("queue/r_1")).toBeUndefined();
    expect(await s.keys("queue/")).toEqual(["queue/r_2"]);
  });

  it("copies values in and out", async () => {
    const s = await make();
    const v = new Uint8Array([1, 2]);
    await s.set("k", v);
    v[0] = 99;
    const out = (await s.get("k"))!;
    out[1] = 77;
    expect([...(await s.get("k"))!]).toEqual([1, 2]);
  });

  it("rejects keys that could escape or are malformed", async () => {
    const s = await make();
    for (const bad of ["", "a b", "../x", "a/../../x", "é", "x".repeat(201)]) {
      await expect(s.set(bad, new Uint8Array([1]))).rejects.toThrow(TypeError);
    }
  });

  it("JSON helpers round-trip", async () => {
    const s = await make();
    await setJson(s, "cfg", { a: [1, "x"] });
    expect(await getJson(s, "cfg")).toEqual({ a: [1, "x"] });
  });
});

describe("fileStorage", () => {
  it("persists across instances and leaves no temp files", async () => {
    const dir = await tempDir();
    await fileStorage(dir).set("models/m/1/model.onnx", new Uint8Array([5, 6]));
    const again = fileStorage(dir);
    expect([...(await again.get("models/m/1/model.onnx"))!]).toEqual([5, 6]);
    expect(await again.keys("models/")).toEqual(["models/m/1/model.onnx"]);
    const files = await readdir(path.join(dir, "models/m/1"));
    expect(files).toEqual(["model.onnx"]);
  });
  it("needs a directory", () => {
    expect(() => fileStorage("")).toThrow(TypeError);
  });
});

describe("fileStorage permissions", () => {
  it("keeps the device's files to their owner: directories 0700, files 0600", async () => {
    const root = path.join(await tempDir(), "store");
    // A root left readable by an older version is tightened on the first write.
    await mkdir(root, { mode: 0o755 });
    await chmod(root, 0o755);
    const s = fileStorage({ dir: root });
    await s.set("device/identity", new TextEncoder().encode('{"secret_key":"..."}'));
    expect((await stat(root)).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(root, "device"))).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(root, "device", "identity"))).mode & 0o777).toBe(0o600);
    // A rewrite keeps the mode.
    await s.set("device/identity", new Uint8Array([1]));
    expect((await stat(path.join(root, "device", "identity"))).mode & 0o777).toBe(0o600);
  });
});
