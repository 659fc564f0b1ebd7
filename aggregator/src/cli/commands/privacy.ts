/**
 * @module
 * `fedge privacy`: ε for (q, z, steps, δ), or the smallest z for a target ε. Prints one JSON object on stdout.
 */
import { parseArgs } from "node:util";
import { getNoiseMultiplier } from "@fedge/privacy";
import { createAccountant } from "@fedge/privacy";
import { UsageError, type Command } from "../command.ts";

const USAGE = `Usage:
  fedge privacy --sampling-rate Q --noise-multiplier Z --steps T --delta D [--accountant rdp|pld] [--conversion improved|classic]
  fedge privacy --sampling-rate Q --target-epsilon E --steps T --delta D [--accountant rdp|pld]

Privacy spent by T steps of the Poisson-subsampled Gaussian mechanism (DP-SGD / DP-FedAvg), as one JSON object:
  {"epsilon", "delta", "accountant", "order" (rdp only), "sampling_rate", "noise_multiplier", "steps", ...}
With --target-epsilon instead of --noise-multiplier, prints the smallest noise_multiplier (bisection to 0.01) that
meets (E, D), and the epsilon it achieves.

Options:
  --sampling-rate Q      Poisson sampling rate, 0 < Q <= 1
  --noise-multiplier Z   noise standard deviation / clipping norm, Z > 0
  --target-epsilon E     target epsilon, E > 0 (instead of --noise-multiplier)
  --steps T              number of steps (rounds), a positive integer
  --delta D              target delta, 0 < D < 1
  --accountant NAME      rdp (default; Mironov et al. 2019 + Balle et al. 2020 conversion) or pld (FFT, tighter)
  --conversion NAME      rdp only: improved (default, arXiv 1905.09982 Thm. 21) or classic (arXiv 1702.07476 Prop. 3)
  -h, --help             this help
Exit codes: 0 ok, 2 bad arguments, 1 other errors (see fedge --help).
`;

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function num(flag: string, text: string | undefined): number {
  if (text === undefined) throw new UsageError(`missing --${flag}`);
  if (!NUMBER.test(text.trim())) throw new UsageError(`--${flag} must be a number, got "${text}"`);
  const v = Number(text);
  if (!Number.isFinite(v)) throw new UsageError(`--${flag} must be finite, got "${text}"`);
  return v;
}

export const privacyCommand: Command = {
  summary: "epsilon spent by T steps of the subsampled Gaussian mechanism, or the noise multiplier for a target",
  usage: USAGE,
  async run(argv, io) {
    let values;
    try {
      ({ values } = parseArgs({
        args: argv,
        strict: true,
        allowPositionals: false,
        options: {
          "sampling-rate": { type: "string" },
          "noise-multiplier": { type: "string" },
          "target-epsilon": { type: "string" },
          steps: { type: "string" },
          delta: { type: "string" },
          accountant: { type: "string", default: "rdp" },
          conversion: { type: "string" },
        },
      }));
    } catch (err) {
      throw new UsageError((err as Error).message.split("\n")[0]!);
    }
    const q = num("sampling-rate", values["sampling-rate"]);
    if (!(q > 0 && q <= 1)) throw new UsageError(`--sampling-rate must be in (0, 1], got ${values["sampling-rate"]}`);
    const stepsText = values.steps;
    if (stepsText === undefined) throw new UsageError("missing --steps");
    if (!/^\+?\d+$/.test(stepsText.trim()) || !Number.isSafeInteger(Number(stepsText)) || Number(stepsText) < 1) {
      throw new UsageError(`--steps must be a positive integer, got "${stepsText}"`);
    }
    const steps = Number(stepsText);
    const delta = num("delta", values.delta);
    if (!(delta > 0 && delta < 1)) throw new UsageError(`--delta must be in (0, 1), got ${values.delta}`);
    const accountant = values.accountant;
    if (accountant !== "rdp" && accountant !== "pld") {
      throw new UsageError(`--accountant must be rdp or pld, got "${accountant}"`);
    }
    const conversion = values.conversion ?? "improved";
    if (conversion !== "improved" && conversion !== "classic") {
      throw new UsageError(`--conversion must be improved or classic, got "${conversion}"`);
    }
    if (values.conversion !== undefined && accountant !== "rdp") {
      throw new UsageError("--conversion applies to --accountant rdp only");
    }
    const hasZ = values["noise-multiplier"] !== undefined;
    const hasE = values["target-epsilon"] !== undefined;
    if (hasZ === hasE) throw new UsageError("give exactly one of --noise-multiplier or --target-epsilon");

    if (hasE) {
      const targetEpsilon = num("target-epsilon", values["target-epsilon"]);
      if (!(targetEpsilon > 0)) throw new UsageError(`--target-epsilon must be > 0, got ${values["target-epsilon"]}`);
      const r = getNoiseMultiplier({
        targetEpsilon,
        targetDelta: delta,
        sampleRate: q,
        steps,
        accountant,
        accountantOptions: accountant === "rdp" ? { conversion } : {},
      });
      io.stdout(
        JSON.stringify({
          noise_multiplier: r.noiseMultiplier,
          epsilon: r.epsilon,
          target_epsilon: targetEpsilon,
          delta,
          accountant,
          sampling_rate: q,
          steps,
          ...(accountant === "rdp" ? { conversion } : {}),
        }) + "\n",
      );
      return 0;
    }
    const z = num("noise-multiplier", values["noise-multiplier"]);
    if (!(z > 0)) throw new UsageError(`--noise-multiplier must be > 0, got ${values["noise-multiplier"]}`);
    if (accountant === "rdp") {
      const acc = createAccountant("rdp", { conversion });
      acc.step({ noiseMultiplier: z, sampleRate: q }, steps);
      const spent = acc.getPrivacySpent(delta);
      io.stdout(
        JSON.stringify({
          epsilon: spent.epsilon,
          delta,
          accountant,
          order: spent.order,
          conversion,
          sampling_rate: q,
          noise_multiplier: z,
          steps,
          ...(spent.orderAtGridEdge ? { warning: "best RDP order is at the edge of the order grid" } : {}),
        }) + "\n",
      );
      return 0;
    }
    const acc = createAccountant("pld");
    acc.step({ noiseMultiplier: z, sampleRate: q }, steps);
    io.stdout(
      JSON.stringify({
        epsilon: acc.getEpsilon(delta),
        delta,
        accountant,
        sampling_rate: q,
        noise_multiplier: z,
        steps,
        discretization: acc.discretization,
      }) + "\n",
    );
    return 0;
  },
};
