/**
 * `npm run deploy [-- --dry-run] [-- --plan free|paid] [-- <wrangler deploy flags>]`: ships the edge with
 * `wrangler deploy` (the top-level environment of wrangler.toml is production) after three checks:
 *
 * 1. production has no dev paths: `[vars] FEDGE_ENV` is not `local` (local settings live in `.dev.vars`);
 * 2. the KV ids are real (`npm run provision` writes them; a dry run only warns);
 * 3. the bundle fits the plan: wrangler bundles into a temp dir (`--dry-run --outdir`), and the gzip size it reports
 *    (the size Cloudflare's limit applies to) must be at most the plan's limit, 10 MiB on Workers Paid (the default,
 *    needed for the onnxruntime-web wasm) or 3 MiB on Workers Free.
 *
 * With `--dry-run` it stops after the checks (no account needed: this is what `npm test` runs); otherwise it runs the
 * real `wrangler deploy`. `--json` prints the measurement as one JSON line.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { readWranglerConfig } from "./provision.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Worker size limits after compression (developers.cloudflare.com/workers/platform/limits/#worker-size). */
export const PLAN_LIMIT_KIB = { free: 3 * 1024, paid: 10 * 1024 } as const;

export interface BundleMeasure {
  plan: keyof typeof PLAN_LIMIT_KIB;
  limitKiB: number;
  uploadKiB: number;
  gzipKiB: number;
  /** `[vars]` of the deployed environment, as wrangler lists them. */
  vars: Record<string, string>;
  kvPlaceholders: string[];
}

class DeployError extends Error {}

function wrangler(args: string[], inherit = false): string {
  const r = spawnSync(process.execPath, [path.join(repoRoot, "node_modules/wrangler/bin/wrangler.js"), ...args], {
    cwd: repoRoot,
    encoding: "utf8",
    stdio: inherit ? "inherit" : "pipe",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  if (r.status !== 0) {
    throw new DeployError(
      `wrangler ${args.join(" ")} failed (${r.status ?? r.signal}):\n${r.stdout ?? ""}${r.stderr ?? ""}`,
    );
  }
  return `${r.stdout ?? ""}\n${r.stderr ?? ""}`;
}

/** Bundles the worker as `wrangler deploy` would (no upload) and reads the sizes and vars wrangler reports. */
export function measureBundle(plan: keyof typeof PLAN_LIMIT_KIB, passthrough: string[] = []): BundleMeasure {
  const config = readFileSync(path.join(repoRoot, "wrangler.toml"), "utf8");
  const outdir = mkdtempSync(path.join(tmpdir(), "fedge-deploy-"));
  try {
    const out = wrangler(["deploy", "--dry-run", "--outdir", outdir, ...passthrough]);
    const size = /Total Upload:\s*([\d.]+)\s*KiB\s*\/\s*gzip:\s*([\d.]+)\s*KiB/.exec(out);
    if (!size) throw new DeployError(`wrangler did not report the bundle size:\n${out}`);
    const vars: Record<string, string> = {};
    for (const m of out.matchAll(/env\.(\w+)\s+\("([^"]*)"\)\s+Environment Variable/g)) vars[m[1]!] = m[2]!;
    const kvPlaceholders = readWranglerConfig(config)
      .kv.filter((k) => !/^[0-9a-f]{32}$/.test(k.id))
      .map((k) => `${k.binding} (id "${k.id}")`);
    return {
      plan,
      limitKiB: PLAN_LIMIT_KIB[plan],
      uploadKiB: Number(size[1]),
      gzipKiB: Number(size[2]),
      vars,
      kvPlaceholders,
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values, tokens } = parseArgs({
    options: {
      "dry-run": { type: "boolean", default: false },
      plan: { type: "string", default: "paid" },
      json: { type: "boolean", default: false },
    },
    strict: false,
    tokens: true,
  });
  const plan = values.plan;
  if (plan !== "free" && plan !== "paid") throw new DeployError(`--plan must be free or paid, got "${String(plan)}"`);
  // Everything that is not ours goes to wrangler deploy (e.g. --env NAME, --minify).
  const ours = new Set(["dry-run", "plan", "json"]);
  const passthrough: string[] = [];
  for (const t of tokens) {
    if (t.kind === "option" && !ours.has(t.name))
      passthrough.push(t.rawName, ...(t.value === undefined ? [] : [t.value]));
    if (t.kind === "positional") passthrough.push(t.value);
  }
  const m = measureBundle(plan, passthrough);
  const log = (line: string) => values.json || process.stdout.write(`${line}\n`);
  log(
    `[deploy] bundle ${m.uploadKiB.toFixed(0)} KiB, gzip ${m.gzipKiB.toFixed(0)} KiB of the Workers ${plan} plan's ` +
      `${m.limitKiB} KiB limit (${((100 * m.gzipKiB) / m.limitKiB).toFixed(0)}%)`,
  );
  if (values.json) process.stdout.write(JSON.stringify(m) + "\n");
  if (m.gzipKiB > m.limitKiB) {
    throw new DeployError(
      `the bundle is ${m.gzipKiB.toFixed(0)} KiB gzip, over the ${plan} plan's ${m.limitKiB} KiB` +
        (plan === "free" ? " (the onnxruntime-web wasm needs Workers Paid: --plan paid)" : ""),
    );
  }
  if (m.vars.FEDGE_ENV === "local" || m.vars.FEDGE_DEV_API_KEY !== undefined) {
    throw new DeployError(
      "wrangler.toml [vars] carry dev settings (FEDGE_ENV=local or FEDGE_DEV_API_KEY): move them to .dev.vars",
    );
  }
  if (m.kvPlaceholders.length) {
    const msg = `KV namespace ids are local placeholders: ${m.kvPlaceholders.join(", ")}; run \`npm run provision\``;
    if (!values["dry-run"]) throw new DeployError(msg);
    log(`[deploy] note: ${msg} before a real deploy`);
  }
  if (values["dry-run"]) {
    log("[deploy] --dry-run: checks passed, nothing uploaded");
    return;
  }
  wrangler(["deploy", ...passthrough], true);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`deploy: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
