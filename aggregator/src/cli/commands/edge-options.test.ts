import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "../command.ts";
import { adminTokenOf } from "./edge-options.ts";

describe("adminTokenOf", () => {
  it("never takes the token from a flag value (it shows in ps): env or a file", async () => {
    await expect(adminTokenOf({ "admin-token": "fa_secret" }, {})).rejects.toThrow(UsageError);
    await expect(adminTokenOf({ "admin-token": "fa_secret" }, {})).rejects.toThrow(/FEDGE_ADMIN_TOKEN/);
    expect(await adminTokenOf({}, { FEDGE_ADMIN_TOKEN: "fa_env" })).toBe("fa_env");
    expect(await adminTokenOf({}, { FEDGE_ADMIN_TOKEN: " " })).toBeUndefined();
    const dir = await mkdtemp(path.join(tmpdir(), "fedge-token-"));
    try {
      const file = path.join(dir, "token");
      await writeFile(file, "fa_file\n", { mode: 0o600 });
      expect(await adminTokenOf({ "admin-token-file": file }, { FEDGE_ADMIN_TOKEN: "fa_env" })).toBe("fa_file");
      await writeFile(file, "\n");
      await expect(adminTokenOf({ "admin-token-file": file }, {})).rejects.toThrow(/is empty/);
      await expect(adminTokenOf({ "admin-token-file": path.join(dir, "missing") }, {})).rejects.toThrow(UsageError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
