/**
 * Size report of @fedge/client for browsers: esbuild (minify, ESM, browser platform, code splitting) + gzip -9.
 *
 * - `core`: what an app downloads to construct `FedgeClient` and call predict/register/flushQueue: the entry chunk
 *   plus every chunk it imports statically. onnxruntime is excluded (dynamic import, only for `predictLocal`).
 * - `participate`: the chunk loaded on the first `participate()` (trainer, ONNX reader, update codec, noise).
 * - `tweetnacl`: tweetnacl alone, bundled the same way (the signing dependency the core cannot drop).
 *
 * Run: `node bench/sdk-size-measure.ts` (prints JSON).
 */
import { gzipSync } from "node:zlib";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { build, type Metafile } from "esbuild";

/** The SDK's entry as its package exports name it (never a path into another package's src/). */
const sdkEntry = createRequire(import.meta.url).resolve("@fedge/client");
const nodeModules = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../node_modules");

/** The goal of issue 6 for the core, minified + gzipped. */
export const CORE_GOAL_BYTES = 25_000;

export interface SizeReport {
  /** Minified bytes / gzipped bytes of the core (entry + static imports). */
  coreMinBytes: number;
  coreGzipBytes: number;
  /** Gzipped bytes of the lazily loaded chunks (participate: trainer, ONNX reader, codec). */
  lazyGzipBytes: number;
  /** The largest inputs of the core (bytes in the minified output), for finding what to trim. */
  coreTopInputs: { path: string; bytes: number }[];
  tweetnaclGzipBytes: number;
}

const EXTERNAL = ["onnxruntime-web", "onnxruntime-node", "node:*", "crypto"];

function gz(bytes: Uint8Array | string): number {
  return gzipSync(bytes, { level: 9 }).length;
}

export async function measureSdkSize(): Promise<SizeReport> {
  const outdir = await mkdtemp(path.join(tmpdir(), "fedge-size-"));
  try {
    const result = await build({
      entryPoints: { "fedge-client": sdkEntry },
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      minify: true,
      outdir,
      metafile: true,
      external: EXTERNAL,
      logLevel: "silent",
    });
    const meta = result.metafile as Metafile;
    const entry = Object.keys(meta.outputs).find((o) => meta.outputs[o]!.entryPoint)!;
    // Core = the entry and its static imports (transitively).
    const core = new Set<string>();
    const visit = (out: string) => {
      if (core.has(out)) return;
      core.add(out);
      for (const imp of meta.outputs[out]!.imports)
        if (imp.kind === "import-statement" && !imp.external) visit(imp.path);
    };
    visit(entry);
    let coreMin = 0;
    let coreGzip = 0;
    let lazyGzip = 0;
    const inputs = new Map<string, number>();
    for (const [out, info] of Object.entries(meta.outputs)) {
      if (!out.endsWith(".js")) continue;
      const bytes = await readFile(path.resolve(process.cwd(), out));
      if (core.has(out)) {
        coreMin += bytes.length;
        coreGzip += gz(bytes);
        for (const [p, i] of Object.entries(info.inputs)) inputs.set(p, (inputs.get(p) ?? 0) + i.bytesInOutput);
      } else {
        lazyGzip += gz(bytes);
      }
    }
    const naclEntry = path.join(outdir, "nacl-entry.js");
    await writeFile(naclEntry, `import nacl from "tweetnacl"; export default nacl;`);
    const nacl = await build({
      entryPoints: [naclEntry],
      bundle: true,
      format: "esm",
      platform: "browser",
      minify: true,
      write: false,
      external: EXTERNAL,
      nodePaths: [nodeModules],
      logLevel: "silent",
    });
    return {
      coreMinBytes: coreMin,
      coreGzipBytes: coreGzip,
      lazyGzipBytes: lazyGzip,
      coreTopInputs: [...inputs]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 12)
        .map(([p, bytes]) => ({ path: p, bytes })),
      tweetnaclGzipBytes: gz(nacl.outputFiles[0]!.contents),
    };
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const report = await measureSdkSize();
  console.log(
    JSON.stringify(
      { ...report, coreGoalBytes: CORE_GOAL_BYTES, goalMet: report.coreGzipBytes <= CORE_GOAL_BYTES },
      null,
      2,
    ),
  );
}
