/**
 * `npm run provision`: creates, with wrangler, what the production edge binds and needs, and writes the ids into
 * wrangler.toml. Idempotent: each resource is listed first and created only when absent; a secret that exists is
 * never overwritten (rotate one with `wrangler secret put NAME`). `--dry-run` prints every step with the exact
 * commands and runs none of them (no Cloudflare account needed).
 *
 * Steps, for the top-level (production) environment of the config:
 * 1. the R2 buckets of `[[r2_buckets]]` (`wrangler r2 bucket list`, then `wrangler r2 bucket create NAME`);
 * 2. the KV namespaces of `[[kv_namespaces]]`, titled `<worker>-<binding>` (`wrangler kv namespace list`, then
 *    `wrangler kv namespace create TITLE`), and their ids written into the config in place of the local placeholder;
 * 3. the secrets (`wrangler secret list`, then `wrangler secret put NAME` with the value on stdin):
 *    `FEDGE_ADMIN_TOKEN` (32 random bytes), `FEDGE_EDGE_SIGNING_KEY` (an Ed25519 seed of the edge's own; its public
 *    key is written beside it), `FEDGE_AGGREGATOR_PUBLIC_KEY` (the public key of the aggregator's key file, created
 *    0600 in the format `fedge` uses when missing). New secret values are written to `--secrets-out` (0600, never
 *    committed): the operator needs the admin token, and the key file stays with the aggregator.
 *
 * Flags: --dry-run, --config FILE (wrangler.toml), --aggregator-key FILE (~/.fedge/aggregator-key.json),
 * --secrets-out FILE (.fedge/deploy-secrets.env). Environment: FEDGE_WRANGLER (the wrangler command; default the
 * repository's), CLOUDFLARE_API_TOKEN / CLOUDFLARE_ACCOUNT_ID as wrangler reads them.
 */
import { spawnSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export interface WranglerConfigView {
  worker: string;
  r2: { binding: string; bucket: string }[];
  kv: { binding: string; id: string }[];
}

/** Table blocks `[[name]]` of a TOML file, each with its `key = "value"` pairs (enough for wrangler.toml). */
function blocks(toml: string, name: string): { start: number; end: number; fields: Record<string, string> }[] {
  const out: { start: number; end: number; fields: Record<string, string> }[] = [];
  const header = new RegExp(`^\\[\\[${name.replace(".", "\\.")}\\]\\][ \\t]*$`, "gm");
  for (let m = header.exec(toml); m; m = header.exec(toml)) {
    const start = m.index;
    const next = toml.slice(start + m[0].length).search(/^\[/m);
    const end = next === -1 ? toml.length : start + m[0].length + next;
    const fields: Record<string, string> = {};
    for (const f of toml.slice(start, end).matchAll(/^(\w+)\s*=\s*"([^"]*)"/gm)) fields[f[1]!] = f[2]!;
    out.push({ start, end, fields });
  }
  return out;
}

export function readWranglerConfig(toml: string): WranglerConfigView {
  const worker = /^name\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
  if (!worker) throw new Error('wrangler.toml has no top-level name = "..."');
  return {
    worker,
    r2: blocks(toml, "r2_buckets").map((b) => ({ binding: b.fields.binding!, bucket: b.fields.bucket_name! })),
    kv: blocks(toml, "kv_namespaces").map((b) => ({ binding: b.fields.binding!, id: b.fields.id ?? "" })),
  };
}

/** The config with the `id` of the `[[kv_namespaces]]` block of `binding` set to `id`. */
export function withKvId(toml: string, binding: string, id: string): string {
  const b = blocks(toml, "kv_namespaces").find((x) => x.fields.binding === binding);
  if (!b) throw new Error(`wrangler.toml has no [[kv_namespaces]] with binding = "${binding}"`);
  const block = toml.slice(b.start, b.end);
  const next = /^id\s*=\s*"[^"]*"/m.test(block)
    ? block.replace(/^id\s*=\s*"[^"]*"/m, `id = "${id}"`)
    : block.replace(/^binding\s*=.*$/m, (line) => `${line}\nid = "${id}"`);
  return toml.slice(0, b.start) + next + toml.slice(b.end);
}

export const SECRETS = ["FEDGE_ADMIN_TOKEN", "FEDGE_EDGE_SIGNING_KEY", "FEDGE_AGGREGATOR_PUBLIC_KEY"] as const;

const b64url = (b: Uint8Array) => Buffer.from(b).toString("base64url");

/** A new Ed25519 key: the 32-byte seed and the public key, base64url (the JWK `d` and `x`). */
function ed25519(): { seed: string; publicKey: string } {
  const jwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
  return { seed: jwk.d!, publicKey: jwk.x! };
}

interface Options {
  dryRun: boolean;
  config: string;
  aggregatorKey: string;
  secretsOut: string;
  wrangler: string[];
  log: (line: string) => void;
}

function wranglerCommand(): string[] {
  const fromEnv = process.env.FEDGE_WRANGLER;
  if (fromEnv) return fromEnv.split(" ").filter(Boolean);
  return [process.execPath, path.join(repoRoot, "node_modules/wrangler/bin/wrangler.js")];
}

function show(args: string[]): string {
  return ["wrangler", ...args].map((a) => (/^[\w./:@=-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
}

/** The aggregator's public key from its key file, creating the file (0600) when it is missing. */
function aggregatorPublicKey(file: string, log: (l: string) => void): string {
  if (!existsSync(file)) {
    const key = ed25519();
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, JSON.stringify({ kty: "ed25519", public_key: key.publicKey, secret_key: key.seed }) + "\n", {
      mode: 0o600,
      flag: "wx",
    });
    log(`created the aggregator key ${file} (0600); give it to \`fedge aggregate --signing-key\``);
  }
  const parsed = JSON.parse(readFileSync(file, "utf8")) as { kty?: string; public_key?: string };
  if (parsed.kty !== "ed25519" || typeof parsed.public_key !== "string") {
    throw new Error(`--aggregator-key ${file} must hold {"kty":"ed25519","public_key","secret_key"}`);
  }
  return parsed.public_key;
}

export async function provision(o: Options): Promise<{ created: string[]; configChanged: boolean }> {
  const toml = readFileSync(o.config, "utf8");
  const cfg = readWranglerConfig(toml);
  const configArgs = ["--config", o.config];
  // What the plan prints: the config as the operator would type it.
  const shownArgs = ["--config", path.relative(process.cwd(), o.config) || o.config];
  const created: string[] = [];
  const run = (args: string[], input?: string): string => {
    const [cmd, ...pre] = o.wrangler;
    const r = spawnSync(cmd!, [...pre, ...args], {
      cwd: path.dirname(o.config),
      encoding: "utf8",
      input: input ?? "",
      env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false" },
    });
    if (r.status !== 0) {
      throw new Error(`${show(args)} failed (${r.status ?? r.signal}):\n${(r.stderr || r.stdout).trim()}`);
    }
    return r.stdout;
  };
  const step = (n: number, what: string, commands: string[]) => {
    o.log(`${n}. ${what}`);
    for (const c of commands) o.log(`     ${c}`);
  };
  let n = 0;
  if (o.dryRun) {
    o.log(`provision --dry-run: prints the plan; runs no wrangler command and changes no file.`);
    o.log(
      `config ${path.relative(process.cwd(), o.config) || o.config}: worker "${cfg.worker}", top-level environment (production)`,
    );
  }

  // 1. R2 buckets.
  const bucketList = ["r2", "bucket", "list"];
  let buckets: Set<string> | undefined;
  for (const { binding, bucket } of cfg.r2) {
    const create = ["r2", "bucket", "create", bucket];
    if (o.dryRun) {
      step(++n, `R2 bucket ${bucket} (binding ${binding}): created if absent`, [
        `${show(bucketList)}   # lists the account's buckets`,
        `${show(create)}   # only when ${bucket} is not listed`,
      ]);
      continue;
    }
    buckets ??= new Set([...run(bucketList).matchAll(/^name:\s*(\S+)/gm)].map((m) => m[1]!));
    if (buckets.has(bucket)) o.log(`R2 bucket ${bucket}: exists`);
    else {
      run(create);
      created.push(`r2:${bucket}`);
      o.log(`R2 bucket ${bucket}: created`);
    }
  }

  // 2. KV namespaces, ids into the config.
  const kvList = ["kv", "namespace", "list"];
  let next = toml;
  let namespaces: Map<string, string> | undefined;
  const listNamespaces = () =>
    new Map((JSON.parse(run(kvList)) as { id: string; title: string }[]).map((x) => [x.title, x.id] as const));
  for (const { binding, id } of cfg.kv) {
    const title = `${cfg.worker}-${binding.toLowerCase()}`;
    const create = ["kv", "namespace", "create", title];
    if (o.dryRun) {
      const placeholder = /^[0-9a-f]{32}$/.test(id) ? `now ${id}` : `now "${id}", a local placeholder`;
      step(++n, `KV namespace ${title} (binding ${binding}): created if absent, its id written to the config`, [
        `${show(kvList)}   # lists the account's namespaces (JSON)`,
        `${show(create)}   # only when no namespace is titled ${title}`,
        `${path.basename(o.config)}: [[kv_namespaces]] binding = "${binding}" gets id = "<its id>" (${placeholder})`,
      ]);
      continue;
    }
    namespaces ??= listNamespaces();
    if (!namespaces.has(title)) {
      run(create);
      created.push(`kv:${title}`);
      namespaces = listNamespaces();
      if (!namespaces.has(title))
        throw new Error(`created KV namespace ${title}, but ${show(kvList)} does not list it`);
      o.log(`KV namespace ${title}: created (${namespaces.get(title)})`);
    } else o.log(`KV namespace ${title}: exists (${namespaces.get(title)})`);
    if (id !== namespaces.get(title)) next = withKvId(next, binding, namespaces.get(title)!);
  }
  const configChanged = next !== toml;
  if (configChanged) {
    writeFileSync(o.config, next);
    o.log(`${path.basename(o.config)}: KV ids written (commit this change)`);
  }

  // 3. Secrets: never overwritten.
  const secretList = ["secret", "list", "--format", "json", ...configArgs];
  if (o.dryRun) {
    step(++n, `secrets of worker "${cfg.worker}", each put only when \`wrangler secret list\` lacks it`, [
      `${show(["secret", "list", "--format", "json", ...shownArgs])}`,
      `${show(["secret", "put", "FEDGE_ADMIN_TOKEN", ...shownArgs])}   # stdin: "fa_" + 32 random bytes, base64url`,
      `${show(["secret", "put", "FEDGE_EDGE_SIGNING_KEY", ...shownArgs])}   # stdin: a new Ed25519 seed, base64url`,
      `${show(["secret", "put", "FEDGE_AGGREGATOR_PUBLIC_KEY", ...shownArgs])}   # stdin: public_key of ${o.aggregatorKey}` +
        (existsSync(o.aggregatorKey) ? "" : " (created 0600: it does not exist yet)"),
      `new values are written to ${o.secretsOut} (0600)`,
    ]);
    o.log(`then: npm run deploy (wrangler deploy of the top-level environment)`);
    return { created, configChanged: false };
  }
  let existing: Set<string>;
  try {
    existing = new Set((JSON.parse(run(secretList)) as { name: string }[]).map((s) => s.name));
  } catch (e) {
    // A worker that was never deployed has no secrets to list; `secret put` creates it.
    if (!/not found|10007/i.test((e as Error).message)) throw e;
    existing = new Set();
  }
  const saved: string[] = [];
  for (const name of SECRETS) {
    if (existing.has(name)) {
      o.log(`secret ${name}: exists (kept)`);
      continue;
    }
    let value: string;
    if (name === "FEDGE_ADMIN_TOKEN") value = `fa_${b64url(randomBytes(32))}`;
    else if (name === "FEDGE_EDGE_SIGNING_KEY") {
      const key = ed25519();
      value = key.seed;
      saved.push(`FEDGE_EDGE_PUBLIC_KEY=${key.publicKey}`);
    } else value = aggregatorPublicKey(o.aggregatorKey, o.log);
    run(["secret", "put", name, ...configArgs], value);
    created.push(`secret:${name}`);
    if (name !== "FEDGE_AGGREGATOR_PUBLIC_KEY") saved.push(`${name}=${value}`);
    o.log(`secret ${name}: put`);
  }
  if (saved.length) {
    mkdirSync(path.dirname(o.secretsOut), { recursive: true, mode: 0o700 });
    const before = existsSync(o.secretsOut) ? readFileSync(o.secretsOut, "utf8") : "";
    writeFileSync(o.secretsOut, before + saved.join("\n") + "\n", { mode: 0o600 });
    chmodSync(o.secretsOut, 0o600);
    o.log(`new secret values written to ${o.secretsOut} (0600; keep it out of git)`);
  }
  o.log(created.length ? `provisioned: ${created.join(", ")}` : "nothing to do: everything exists");
  return { created, configChanged };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "dry-run": { type: "boolean", default: false },
      config: { type: "string", default: path.join(repoRoot, "wrangler.toml") },
      "aggregator-key": { type: "string", default: path.join(homedir(), ".fedge", "aggregator-key.json") },
      "secrets-out": { type: "string", default: path.join(repoRoot, ".fedge", "deploy-secrets.env") },
    },
  });
  await provision({
    dryRun: values["dry-run"],
    config: path.resolve(values.config),
    aggregatorKey: path.resolve(values["aggregator-key"]),
    secretsOut: path.resolve(values["secrets-out"]),
    wrangler: wranglerCommand(),
    log: (l) => process.stdout.write(`${l}\n`),
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`provision: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
