import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BackendError } from "./errors.ts";
import { createBackend, resolvePreference } from "./create-backend.ts";

const node = process.execPath;
const child = fileURLToPath(new URL("../test/fixtures/child.ts", import.meta.url));

/** Runs the fixture in a fresh Node process (the same Node that runs vitest). */
function runChild(env: Record<string, string>): {
  status: number | null;
  signal: string | null;
  json: { kind: string; first: number; notes: string[]; reason: string } | null;
  stderr: string;
} {
  const r = spawnSync(node, [child], { env: { ...process.env, ...env }, encoding: "utf8", timeout: 60_000 });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  let json = null;
  try {
    json = JSON.parse(line);
  } catch {
    /* reported below */
  }
  return { status: r.status, signal: r.signal, json, stderr: r.stderr };
}

describe("createBackend", () => {
  it("FEDGE_BACKEND overrides prefer; bad values are rejected", () => {
    expect(resolvePreference(undefined, {})).toBe("auto");
    expect(resolvePreference("cpu", {})).toBe("cpu");
    expect(resolvePreference("cpu", { FEDGE_BACKEND: "webgpu" })).toBe("webgpu");
    expect(resolvePreference("webgpu", { FEDGE_BACKEND: " CPU " })).toBe("cpu");
    expect(() => resolvePreference(undefined, { FEDGE_BACKEND: "cuda" })).toThrow(BackendError);
    expect(() => resolvePreference("gpu" as "cpu", {})).toThrow(/prefer must be/);
  });

  it("auto prefers cpu on the software adapter here (lavapipe) and says why; webgpu still uses it when asked", async () => {
    const notes: string[] = [];
    const log = (m: string): number => notes.push(m);
    const auto = await createBackend({ env: {}, log });
    expect(auto.kind).toBe("cpu");
    expect(auto.reason).toMatch(
      /^auto: software WebGPU adapter \(isFallbackAdapter; .*llvmpipe.*\); the cpu backend is faster there$/,
    );
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(
      /software WebGPU adapter .*: using the cpu backend, which is faster there \(FEDGE_BACKEND=webgpu/,
    );
    await auto.dispose();
    const gpu = await createBackend({ env: { FEDGE_BACKEND: "webgpu" }, log });
    expect(gpu.kind).toBe("webgpu");
    expect(gpu.description).toMatch(/^webgpu \(/);
    expect(gpu.reason).toMatch(/^FEDGE_BACKEND is "webgpu": software adapter \(/);
    await gpu.dispose();
    const cpu = await createBackend({ prefer: "webgpu", env: { FEDGE_BACKEND: "cpu" }, log });
    expect(cpu.kind).toBe("cpu");
    expect(cpu.reason).toBe('FEDGE_BACKEND is "cpu"');
    expect(notes).toHaveLength(1); // only auto's choice of cpu is logged
    await expect(createBackend({ env: { FEDGE_BACKEND: "nope" } })).rejects.toThrow(/FEDGE_BACKEND must be/);
    // bad webgpu options are refused even though auto ends up on the cpu here
    await expect(createBackend({ env: {}, log, webgpu: { batchSize: 0 } })).rejects.toMatchObject({
      reason: "invalid_argument",
    });
  });

  it("without any adapter: auto falls back to cpu with a note, FEDGE_BACKEND=webgpu fails clearly", () => {
    // VK_ICD_FILENAMES pointing at nothing leaves the Vulkan loader without drivers: Dawn then has no adapter.
    const noGpu = { VK_ICD_FILENAMES: "/nonexistent/icd.json", FEDGE_BACKEND: "" };
    const auto = runChild(noGpu);
    expect(auto.status).toBe(0);
    expect(auto.json?.kind).toBe("cpu");
    expect(auto.json?.notes.join()).toMatch(/no WebGPU adapter; using the cpu backend/);
    expect(auto.json?.reason).toBe("auto: no WebGPU adapter");
    const forced = runChild({ ...noGpu, FEDGE_BACKEND: "webgpu" });
    expect(forced.status).not.toBe(0);
    expect(forced.stderr).toMatch(/FEDGE_BACKEND\/prefer is "webgpu" but no WebGPU adapter/);
  });

  it("a process using webgpu exits cleanly (code 0, no signal) across repeated runs, same result as cpu", () => {
    const cpu = runChild({ FEDGE_BACKEND: "cpu" });
    expect(cpu.status).toBe(0);
    const auto = runChild({ FEDGE_BACKEND: "" }); // opens the adapter, then leaves it for the cpu backend
    expect({ status: auto.status, signal: auto.signal, kind: auto.json?.kind }).toEqual({
      status: 0,
      signal: null,
      kind: "cpu",
    });
    expect(auto.json?.first).toBe(cpu.json?.first);
    for (let i = 0; i < 3; i++) {
      const r = runChild({ FEDGE_BACKEND: "webgpu" });
      expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
      expect(r.json?.kind).toBe("webgpu");
      expect(r.json?.first).toBe(cpu.json?.first);
    }
  });
});
