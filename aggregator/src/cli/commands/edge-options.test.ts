import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError, parseFlags } from "../command.ts";
import { aggregateCommand } from "./aggregate.ts";
import { auditCommand } from "./audit.ts";
import { EDGE_FLAGS, EDGE_HELP, adminTokenOf, apiKeyOf, backendOf, edgeUsageHeader, helpLine } from "./edge-options.ts";
import { rollbackCommand } from "./rollback.ts";

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

describe("apiKeyOf", () => {
  it("reads the app key from --api-key-file (first line) or FEDGE_API_KEY, and requires one", async () => {
    expect(await apiKeyOf({}, { FEDGE_API_KEY: " fk_env " })).toBe("fk_env");
    await expect(apiKeyOf({}, {})).rejects.toThrow(/FEDGE_API_KEY/);
    await expect(apiKeyOf({}, { FEDGE_API_KEY: "  " })).rejects.toThrow(UsageError);
    const dir = await mkdtemp(path.join(tmpdir(), "fedge-api-key-"));
    try {
      const file = path.join(dir, "key");
      await writeFile(file, "fk_file\nsecond line\n", { mode: 0o600 });
      expect(await apiKeyOf({ "api-key-file": file }, { FEDGE_API_KEY: "fk_env" })).toBe("fk_file");
      await writeFile(file, "");
      await expect(apiKeyOf({ "api-key-file": file }, {})).rejects.toThrow(/--api-key-file .* is empty/);
      await expect(apiKeyOf({ "api-key-file": path.join(dir, "missing") }, {})).rejects.toThrow(/--api-key-file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("the edge commands' shared flags and usage", () => {
  it("parses with one strict parser: unknown flags and missing values are usage errors naming the flag", () => {
    expect(parseFlags(["--edge", "http://x", "--register-key"], EDGE_FLAGS)).toEqual({
      edge: "http://x",
      "register-key": true,
    });
    expect(() => parseFlags(["--nope"], EDGE_FLAGS)).toThrow(UsageError);
    expect(() => parseFlags(["--edge"], EDGE_FLAGS)).toThrow(/--edge/);
    expect(() => parseFlags(["positional"], EDGE_FLAGS)).toThrow(UsageError);
  });

  it("takes --backend auto, cpu or webgpu", () => {
    expect(backendOf({})).toBe("auto");
    expect(backendOf({ backend: "cpu" })).toBe("cpu");
    expect(() => backendOf({ backend: "tpu" })).toThrow(/--backend must be auto, cpu or webgpu/);
  });

  it("writes one usage header and one set of edge help lines for aggregate, audit and rollback", () => {
    expect(edgeUsageHeader("x", "[--a A]", "[--b B]")).toBe(
      "Usage:\n  fedge x --edge URL --model NAME [--a A]\n          [--b B]\n",
    );
    const long = helpLine("--flag FILE", "word ".repeat(60).trim());
    for (const line of long.split("\n")) expect(line.length).toBeLessThanOrEqual(118);
    expect(long.split("\n")[1]!.indexOf("word")).toBe(long.indexOf("word"));
    for (const [name, command] of [
      ["aggregate", aggregateCommand],
      ["audit", auditCommand],
      ["rollback", rollbackCommand],
    ] as const) {
      expect(command.usage.startsWith(`Usage:\n  fedge ${name} --edge URL --model NAME `), name).toBe(true);
      expect(command.usage, name).toContain("[env FEDGE_ADMIN_TOKEN | --admin-token-file FILE");
      expect(command.usage, name).toContain(EDGE_HELP.edge);
      for (const line of command.usage.split("\n")) expect(line.length, `${name}: ${line}`).toBeLessThanOrEqual(120);
    }
  });
});
