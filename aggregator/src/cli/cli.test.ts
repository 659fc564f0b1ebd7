import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runCli } from "./cli.ts";

const BIN = fileURLToPath(new URL("../../bin/fedge.js", import.meta.url));

/** Spawns the real bin with the Node running vitest (Node 24, which runs .ts sources). */
function fedge(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("fedge privacy (spawned)", () => {
  it("prints one JSON object with the opacus value for σ=1.5, q=0.04, 2250 steps, δ=1e-5", () => {
    const r = fedge(
      "privacy",
      "--sampling-rate",
      "0.04",
      "--noise-multiplier",
      "1.5",
      "--steps",
      "2250",
      "--delta",
      "1e-5",
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({
      delta: 1e-5,
      accountant: "rdp",
      order: 3.9,
      sampling_rate: 0.04,
      noise_multiplier: 1.5,
      steps: 2250,
    });
    expect(out.epsilon).toBeCloseTo(7.32911117143, 9);
  });

  it("--target-epsilon prints the noise multiplier (opacus: ε=8 → σ ≈ 1.416)", () => {
    const r = fedge(
      "privacy",
      "--sampling-rate",
      "0.04",
      "--target-epsilon",
      "8",
      "--steps",
      "2250",
      "--delta",
      "1e-5",
    );
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(Math.abs(out.noise_multiplier - 1.416)).toBeLessThan(0.01);
    expect(out.epsilon).toBeLessThanOrEqual(8);
  });

  it("--accountant pld gives a smaller ε than rdp", () => {
    const args = ["privacy", "--sampling-rate", "0.01", "--noise-multiplier", "1", "--steps", "100", "--delta", "1e-5"];
    const rdp = JSON.parse(fedge(...args).stdout);
    const pld = JSON.parse(fedge(...args, "--accountant", "pld").stdout);
    expect(pld.accountant).toBe("pld");
    expect(pld.epsilon).toBeLessThan(rdp.epsilon);
    expect(pld.epsilon).toBeGreaterThan(0);
  });

  it("--help and no command", () => {
    const help = fedge("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("privacy");
    expect(fedge().code).toBe(2);
    expect(fedge("privacy", "--help").stdout).toContain("--sampling-rate");
  });
});

describe("fedge privacy bad arguments → exit 2 and one clear line on stderr", () => {
  const ok = { "--sampling-rate": "0.04", "--noise-multiplier": "1.5", "--steps": "2250", "--delta": "1e-5" };
  const argv = (over: Record<string, string | null>, extra: string[] = []) => {
    const all = { ...ok, ...over };
    return ["privacy", ...Object.entries(all).flatMap(([k, v]) => (v === null ? [] : [k, v])), ...extra];
  };
  const cases: [string, string[], RegExp][] = [
    ["q = 0", argv({ "--sampling-rate": "0" }), /sampling-rate must be in \(0, 1\]/],
    ["q > 1", argv({ "--sampling-rate": "1.5" }), /sampling-rate must be in \(0, 1\]/],
    ["q not a number", argv({ "--sampling-rate": "abc" }), /sampling-rate must be a number/],
    ["z = 0", argv({ "--noise-multiplier": "0" }), /noise-multiplier must be > 0/],
    ["z < 0", argv({ "--noise-multiplier": null }, ["--noise-multiplier=-1"]), /noise-multiplier must be > 0/],
    ["z < 0 without =", argv({ "--noise-multiplier": "-1" }), /'--noise-multiplier' argument is ambiguous/],
    ["δ = 0", argv({ "--delta": "0" }), /delta must be in \(0, 1\)/],
    ["δ = 1", argv({ "--delta": "1" }), /delta must be in \(0, 1\)/],
    ["fractional steps", argv({ "--steps": "2.5" }), /steps must be a positive integer/],
    ["negative steps", argv({ "--steps": "-3" }), /steps must be a positive integer|--steps/],
    ["zero steps", argv({ "--steps": "0" }), /steps must be a positive integer/],
    ["missing steps", argv({ "--steps": null }), /missing --steps/],
    ["unknown flag", argv({}, ["--bogus", "1"]), /Unknown option '--bogus'/],
    ["both z and target", argv({}, ["--target-epsilon", "8"]), /exactly one of --noise-multiplier or --target-epsilon/],
    ["neither z nor target", argv({ "--noise-multiplier": null }), /exactly one of/],
    ["unknown accountant", argv({}, ["--accountant", "gdp"]), /accountant must be rdp or pld/],
    ["positional", argv({}, ["extra"]), /positional|Unexpected argument/i],
  ];
  it.each(cases)("%s", async (_name, args, message) => {
    let out = "";
    let err = "";
    const code = await runCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
    expect(code).toBe(2);
    expect(out).toBe("");
    expect(err.trim().split("\n")).toHaveLength(1);
    expect(err).toMatch(message);
  });

  it("unknown command exits 2 (spawned)", () => {
    const r = fedge("frobnicate");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command "frobnicate"/);
    const bad = fedge("privacy", "--sampling-rate", "2", "--noise-multiplier", "1", "--steps", "1", "--delta", "1e-5");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^fedge privacy: --sampling-rate must be in \(0, 1\]/);
  });
});
