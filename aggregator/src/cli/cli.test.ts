import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { OnnxFormatError, UnsupportedModelError } from "@fedge/ml";
import { PrivacyBudgetExceededError, InvalidPrivacyParameterError } from "@fedge/privacy";
import { CheckpointError } from "../checkpoint.ts";
import { ConfigError } from "../config.ts";
import { EdgeAdminError, EdgeClientError } from "../edge/admin-client.ts";
import { SigningKeyFileError } from "../export.ts";
import { QuantizeInputError } from "../quantize-onnx.ts";
import { RoundStateError } from "../round.ts";
import { UpdateRejectedError } from "../strategy/strategy.ts";
import { COMMANDS, exitOf, helpText, runCli } from "./cli.ts";
import { UsageError } from "./command.ts";

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

describe("fedge privacy bad arguments → exit 2, one clear line on stderr and its fix", () => {
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
    const lines = err.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(message);
    expect(lines[1]).toMatch(/^ {2}fix: /);
  });

  it.each(cases)("%s, with --json: one JSON error naming the flag", async (_name, args) => {
    let err = "";
    const code = await runCli([...args, "--json"], { stdout: () => undefined, stderr: (t) => (err += t) });
    expect(code).toBe(2);
    const lines = err.trim().split("\n");
    expect(lines).toHaveLength(1);
    const { error } = JSON.parse(lines[0]!) as { error: Record<string, unknown> };
    expect(error).toMatchObject({ code: "usage", command: "privacy", exit_code: 2 });
    expect(error.fix).toEqual(expect.any(String));
    if (/--[a-z]/.test(error.message as string)) expect(error.flag).toMatch(/^--[a-z-]+$/);
  });

  it("unknown command exits 2 (spawned)", () => {
    const r = fedge("frobnicate");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command "frobnicate"/);
    const bad = fedge("privacy", "--sampling-rate", "2", "--noise-multiplier", "1", "--steps", "1", "--delta", "1e-5");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^fedge privacy: --sampling-rate must be in \(0, 1\]/);
    expect(bad.stderr).toMatch(/fix: run `fedge privacy --help` for what --sampling-rate takes/);
  });

  it("--help documents --json and the exit codes; --json leaves a result unchanged", async () => {
    const help = fedge("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--json/);
    expect(help.stdout).toMatch(
      /Exit codes[^\n]*:\n {2}0 {2}done\n {2}2 {2}bad arguments[\s\S]*\n {2}1 {2}the run failed/,
    );
    const args = [
      "privacy",
      "--sampling-rate",
      "0.04",
      "--noise-multiplier",
      "1.5",
      "--steps",
      "10",
      "--delta",
      "1e-5",
    ];
    const plain = fedge(...args);
    const json = fedge("--json", ...args);
    expect(json.code).toBe(0);
    expect(json.stdout).toBe(plain.stdout);
  });
});

describe("exit codes: the CLI maps the libraries' domain errors", () => {
  const budget = new PrivacyBudgetExceededError("p", "p_3", { epsilon: 1, delta: 1e-5 }, 1.5);
  const cases: [string, unknown, number, string | undefined][] = [
    ["usage", new UsageError("--x"), 2, undefined],
    ["invalid config", new ConfigError([{ path: "samplingRate", message: "required" }]), 2, undefined],
    ["key file", new SigningKeyFileError("exposed", "k is accessible by group/others"), 2, undefined],
    ["privacy parameter", new InvalidPrivacyParameterError("delta must be in (0, 1)"), 2, undefined],
    ["unreachable ε", new InvalidPrivacyParameterError("too low", { reason: "unreachable_target" }), 2, undefined],
    ["a library's RangeError", new RangeError("batchSize must be an integer >= 1"), 2, undefined],
    ["budget exceeded", budget, 1, "budget_exceeded"],
    ["ledger state", new InvalidPrivacyParameterError("bad", { reason: "invalid_state" }), 1, "invalid_state"],
    ["round state", new RoundStateError("round_in_progress", "round r1 is opened"), 1, "round_in_progress"],
    ["checkpoint", new CheckpointError("for another model", { reason: "config_mismatch" }), 1, "config_mismatch"],
    ["edge client", new EdgeClientError("close_timeout", "did not close"), 1, "close_timeout"],
    ["refused update", new UpdateRejectedError("non_finite", "update 0 has a non-finite value"), 1, "non_finite"],
    ["edge answer", new EdgeAdminError(409, "conflict", "no earlier serving version", "POST", "/x"), 1, "conflict"],
    ["malformed ONNX", new OnnxFormatError("empty ONNX file"), 1, "invalid_model"],
    ["unservable ONNX", new UnsupportedModelError("opset", "ai.onnx opset 27"), 1, "invalid_model"],
    ["quantize input", new QuantizeInputError("cannot read model m.onnx: ENOENT"), 1, "invalid_input"],
    ["anything else", new TypeError("x is undefined"), 1, undefined],
  ];
  it.each(cases)("%s", (_name, err, code, label) => {
    expect(exitOf(err)).toEqual({ code, label });
  });

  it("prints the reason first and documents the codes in --help", async () => {
    COMMANDS.boom = {
      summary: "test",
      usage: "test",
      run: async () => {
        throw new RoundStateError("round_in_progress", 'round "r1" is opened');
      },
    };
    try {
      let out = "";
      let err = "";
      const code = await runCli(["boom"], { stdout: (t) => (out += t), stderr: (t) => (err += t) });
      expect(code).toBe(1);
      expect(out).toBe("");
      expect(err).toBe('fedge boom: round_in_progress: round "r1" is opened\n');
    } finally {
      delete COMMANDS.boom;
    }
    expect(helpText()).toMatch(/Exit codes[^]*0 {2}done[^]*2 {2}bad arguments[^]*1 {2}the run failed: budget_exceeded/);
  });
});
