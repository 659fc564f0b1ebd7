/**
 * `npm run pack`: builds the installable packages to JavaScript + `.d.ts` with tsdown and packs each with `npm pack`.
 *
 * Inside the monorepo every package's `exports` point at its TypeScript sources (Node 24 strips the types), so tests,
 * the demo and wrangler never need a build. What gets published is described by the package's `publishConfig`
 * (`exports` with `types`/`import`/`default` conditions, `bin`), as pnpm applies it: for each package that has one,
 * this script
 *
 * 1. builds every entry with tsdown (rolldown + rolldown-plugin-dts) into `<out>/stage/<folder>/dist/`: the entry of
 *    `publishConfig.exports[key]` is the source named by `exports[key]`, the entry of `publishConfig.bin[name]` is the
 *    file named by `bin[name]`; dependencies stay external;
 * 2. writes the staged `package.json`: the workspace manifest with `publishConfig` applied, and without `private`,
 *    `scripts`, `devDependencies` and `publishConfig` (nothing of the workspace leaks out);
 * 3. runs `npm pack` on the staged folder into `<out>/` and checks the tarball holds only `package.json`, a README
 *    and built `.js`/`.d.ts` files under `dist/` (no sources, no tests);
 * 4. with `--check`, lints each package with publint (`--strict`) and @arethetypeswrong/cli (`--profile esm-only`: the
 *    packages are ESM only, so the CommonJS rows do not apply).
 *
 * No file in the workspace is touched, so it can run beside tests. Flags: `--out DIR` (default `.pack`), `--check`,
 * `--only NAME[,NAME]`, `--quiet`. Prints one line per tarball (or JSON with `--json`).
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Plugin as RolldownPlugin } from "rolldown";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

type ExportTarget = string | { types?: string; import?: string; default?: string };

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  exports?: Record<string, string>;
  bin?: Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  publishConfig?: { exports?: Record<string, ExportTarget>; bin?: Record<string, string> };
  [key: string]: unknown;
}

export interface PublishedPackage {
  /** Workspace folder, relative to the repository root. */
  folder: string;
  manifest: Manifest;
  /** tsdown entries: output name (without `.js`) → source path relative to the package folder. */
  entries: Record<string, string>;
  /** The entries that are exported, hence need a `.d.ts` (not the bin and internal ones). */
  typed: string[];
  /** Runs only on Node (node built-ins, native add-ons) rather than in every runtime. */
  node: boolean;
}

/**
 * Entries that no `exports` key names but the build must emit: the cpu backend's worker thread, which
 * `gpu-node/src/cpu/threads.ts` starts from `./cpu-worker.js` beside its chunk.
 */
const INTERNAL_ENTRIES: Record<string, Record<string, string>> = {
  "@fedge/gpu-node": { "cpu-worker": "src/cpu/worker.ts" },
};
/** Workspace exports that are deliberately not published (test helpers). Any other must be in publishConfig. */
const UNPUBLISHED_EXPORTS: Record<string, string[]> = {
  "@fedge/privacy": ["./testing"],
  "@fedge/secagg": ["./testing"],
};
/** Packages that only run on Node. The others (protocol, privacy, ml, client) run in Node, workerd and browsers. */
const NODE_ONLY = new Set(["@fedge/gpu-node", "fedge"]);

class PackError extends Error {}

const distName = (target: string, where: string): string => {
  const m = /^\.\/dist\/([\w./-]+)\.js$/.exec(target);
  if (!m) throw new PackError(`${where}: "${target}" must be ./dist/<name>.js`);
  return m[1]!;
};

/** The workspace packages that have a `publishConfig`, with their build entries. */
export function publishedPackages(root = repoRoot): PublishedPackage[] {
  const rootManifest = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { workspaces: string[] };
  const out: PublishedPackage[] = [];
  for (const folder of rootManifest.workspaces) {
    const manifest = JSON.parse(readFileSync(path.join(root, folder, "package.json"), "utf8")) as Manifest;
    const pc = manifest.publishConfig;
    if (!pc) continue;
    const where = `${folder}/package.json`;
    const entries: Record<string, string> = {};
    const typed: string[] = [];
    for (const [key, target] of Object.entries(pc.exports ?? {})) {
      if (typeof target === "string") continue; // "./package.json"
      const source = manifest.exports?.[key];
      if (typeof source !== "string") {
        throw new PackError(
          `${where}: publishConfig.exports["${key}"] has no source in exports["${key}"]; ` +
            `add the export or remove it from publishConfig.exports`,
        );
      }
      for (const cond of ["types", "import", "default"] as const) {
        if (!target[cond]) throw new PackError(`${where}: publishConfig.exports["${key}"] needs a "${cond}" condition`);
      }
      const name = distName(target.import!, `${where} publishConfig.exports["${key}"].import`);
      if (target.types !== `./dist/${name}.d.ts` || target.default !== target.import) {
        throw new PackError(`${where}: publishConfig.exports["${key}"] must point types/default at ./dist/${name}.*`);
      }
      entries[name] = source;
      typed.push(name);
    }
    for (const key of Object.keys(manifest.exports ?? {})) {
      if (!pc.exports?.[key] && !UNPUBLISHED_EXPORTS[manifest.name]?.includes(key)) {
        throw new PackError(
          `${where}: exports["${key}"] is not published: add it to publishConfig.exports ` +
            `(types/import/default under ./dist/) or to UNPUBLISHED_EXPORTS in scripts/pack.ts`,
        );
      }
    }
    for (const [bin, target] of Object.entries(pc.bin ?? {})) {
      const source = manifest.bin?.[bin];
      if (!source) throw new PackError(`${where}: publishConfig.bin.${bin} has no source in bin.${bin}`);
      entries[distName(target, `${where} publishConfig.bin.${bin}`)] = source;
    }
    Object.assign(entries, INTERNAL_ENTRIES[manifest.name] ?? {});
    for (const [name, source] of Object.entries(entries)) {
      if (!existsSync(path.join(root, folder, source)))
        throw new PackError(`${where}: entry ${name}: ${source} is missing`);
    }
    out.push({ folder, manifest, entries, typed, node: NODE_ONLY.has(manifest.name) });
  }
  return out;
}

/** The manifest as published: `publishConfig` applied, workspace-only fields dropped. */
export function stagedManifest(m: Manifest): Manifest {
  const { publishConfig, scripts: _s, devDependencies: _d, private: _p, ...rest } = m;
  return { ...rest, ...publishConfig, files: ["dist"] } as Manifest;
}

/**
 * The manifests say `sideEffects: false` for consumers' bundlers, which lets rolldown drop an import that binds
 * nothing, and a bin (`bin/fedge.js`: `import "../src/cli/main.ts"`) is exactly that. This marks what a bin file
 * imports as having side effects.
 */
function binKeepsItsImports(pkg: PublishedPackage): RolldownPlugin {
  const bins = new Set(Object.values(pkg.manifest.bin ?? {}).map((b) => path.resolve(repoRoot, pkg.folder, b)));
  return {
    name: "fedge:bin-keeps-its-imports",
    async resolveId(source, importer, extra) {
      if (!importer || !bins.has(importer)) return null;
      const resolved = await this.resolve(source, importer, { ...extra, skipSelf: true });
      return resolved ? { ...resolved, moduleSideEffects: true } : null;
    },
  };
}

/** Builds one package with tsdown into `stageDir/dist`. */
async function buildPackage(pkg: PublishedPackage, stageDir: string, quiet: boolean): Promise<void> {
  const { build } = await import("tsdown");
  const m = pkg.manifest;
  const external = [
    ...Object.keys(m.dependencies ?? {}),
    ...Object.keys(m.optionalDependencies ?? {}),
    ...Object.keys(m.peerDependencies ?? {}),
  ];
  await build({
    config: false,
    name: m.name,
    cwd: path.join(repoRoot, pkg.folder),
    entry: pkg.entries,
    outDir: path.join(stageDir, "dist"),
    format: "esm",
    platform: pkg.node ? "node" : "neutral",
    // Node 20 is the oldest runtime the packages promise (engines); browsers: ES2022.
    target: pkg.node ? "node20" : "es2022",
    tsconfig: path.join(repoRoot, pkg.folder, "tsconfig.json"),
    dts: true,
    sourcemap: false,
    clean: true,
    fixedExtension: false,
    hash: true,
    plugins: [binKeepsItsImports(pkg)],
    // A dependency is never bundled (and `node:` built-ins stay imports), so one copy of zod/tweetnacl is shared.
    deps: {
      neverBundle: [...external.map((d) => new RegExp(`^${d.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}(/|$)`)), /^node:/],
    },
    publint: false,
    attw: false,
    report: false,
    exports: false,
    logLevel: quiet ? "error" : "warn",
    // rolldown prints a timing table when plugins (here: the d.ts generator) dominate a build: noise for a CLI run.
    inputOptions: { checks: { pluginTimings: false } },
  });
}

const ALLOWED_FILE = /^(package\.json|README\.md|dist\/[\w./-]+\.(js|d\.ts))$/;
const TEST_FILE = /(^|[/.-])(test|tests|testing|fixtures?|spec)([/.-]|$)/;

interface PackResult {
  name: string;
  folder: string;
  tarball: string;
  files: string[];
  size: number;
  unpackedSize: number;
}

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", env: { ...process.env, npm_config_loglevel: "error" } });
  if (r.status !== 0) {
    throw new PackError(`${path.basename(cmd)} ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

function npmCommand(): string {
  // Inside `npm run`, npm_execpath is npm's own CLI; elsewhere use the npm on PATH.
  return process.env.npm_execpath && process.env.npm_execpath.endsWith("npm-cli.js") ? process.execPath : "npm";
}
function npmArgs(args: string[]): string[] {
  return npmCommand() === "npm" ? args : [process.env.npm_execpath!, ...args];
}

/** Builds, stages and packs every published package (or those in `only`); returns the tarballs. */
export async function packAll(options: { out?: string; only?: string[]; quiet?: boolean } = {}): Promise<PackResult[]> {
  const out = path.resolve(options.out ?? path.join(repoRoot, ".pack"));
  const pkgs = publishedPackages().filter((p) => !options.only || options.only.includes(p.manifest.name));
  mkdirSync(out, { recursive: true });
  const results: PackResult[] = [];
  for (const pkg of pkgs) {
    const stageDir = path.join(out, "stage", pkg.folder);
    rmSync(stageDir, { recursive: true, force: true });
    mkdirSync(stageDir, { recursive: true });
    await buildPackage(pkg, stageDir, options.quiet ?? false);
    writeFileSync(path.join(stageDir, "package.json"), JSON.stringify(stagedManifest(pkg.manifest), null, 2) + "\n");
    const readme = path.join(repoRoot, pkg.folder, "README.md");
    if (existsSync(readme)) cpSync(readme, path.join(stageDir, "README.md"));
    const json = run(npmCommand(), npmArgs(["pack", stageDir, "--pack-destination", out, "--json"]), out);
    const [info] = JSON.parse(json.slice(json.indexOf("["))) as {
      filename: string;
      size: number;
      unpackedSize: number;
      files: { path: string }[];
    }[];
    const files = info!.files.map((f) => f.path).sort();
    const bad = files.filter((f) => !ALLOWED_FILE.test(f) || TEST_FILE.test(f));
    if (bad.length) throw new PackError(`${pkg.manifest.name}: the tarball holds files it must not: ${bad.join(", ")}`);
    for (const name of Object.keys(pkg.entries)) {
      for (const ext of pkg.typed.includes(name) ? [".js", ".d.ts"] : [".js"]) {
        if (!files.includes(`dist/${name}${ext}`))
          throw new PackError(`${pkg.manifest.name}: dist/${name}${ext} missing`);
      }
    }
    results.push({
      name: pkg.manifest.name,
      folder: pkg.folder,
      tarball: path.join(out, info!.filename),
      files,
      size: info!.size,
      unpackedSize: info!.unpackedSize,
    });
  }
  return results;
}

/**
 * publint --strict and attw --profile esm-only on each tarball; throws with the tool's output on a failure. The
 * packages are ESM only, so attw's `node10` and `node16 (from CJS)` rows are out of scope (Node ≥ 20.19 can
 * `require()` them anyway).
 */
export function checkPacked(results: PackResult[], out: string): string {
  const bin = (n: string) => path.join(repoRoot, "node_modules/.bin", n);
  let report = "";
  for (const r of results) {
    // Each tool's full output is in the error when it fails; a passing package gets one line.
    run(bin("publint"), ["run", r.tarball, "--strict"], out);
    run(bin("attw"), [r.tarball, "--profile", "esm-only", "--format", "table-flipped", "--no-color"], out);
    report += `[check] ${r.name.padEnd(18)} publint --strict: ok, attw --profile esm-only: ok\n`;
  }
  return report;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: "string" },
      only: { type: "string" },
      check: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
    },
  });
  const out = path.resolve(values.out ?? path.join(repoRoot, ".pack"));
  const started = Date.now();
  const results = await packAll({
    out,
    quiet: values.quiet || values.json,
    ...(values.only ? { only: values.only.split(",") } : {}),
  });
  if (values.check) {
    const report = checkPacked(results, out);
    if (!values.quiet && !values.json) process.stdout.write(report);
  }
  if (values.json) {
    process.stdout.write(JSON.stringify(results) + "\n");
    return;
  }
  for (const r of results) {
    const kb = (n: number) => `${(n / 1024).toFixed(1)} kB`;
    process.stdout.write(
      `[pack] ${r.name.padEnd(18)} ${path.relative(repoRoot, r.tarball)}  ${kb(r.size)} packed, ` +
        `${kb(r.unpackedSize)} unpacked, ${r.files.length} files\n`,
    );
  }
  const checked = values.check ? ", publint + attw passed" : "";
  process.stdout.write(
    `[pack] ${results.length} packages in ${((Date.now() - started) / 1000).toFixed(1)} s${checked}\n`,
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`pack: ${err instanceof PackError ? err.message : err instanceof Error ? err.stack : err}\n`);
    process.exitCode = 1;
  });
}
