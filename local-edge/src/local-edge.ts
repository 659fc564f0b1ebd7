/**
 * @module
 * Starts the real local edge (`wrangler dev`, workerd) on loopback for demos, end-to-end tests and benchmarks,
 * and stops it by the process group it started (never by name).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface LocalEdgeOptions {
  /**
   * Loopback port. @default 8787. `FEDGE_PORT_OFFSET` in the environment shifts it, so that checkouts side by side
   * (git worktrees) run their end-to-end tests at once without taking each other's edges.
   */
  port?: number;
  /** Where Durable Object, R2 and KV state persists. @default `<repo>/.wrangler/state` */
  persistTo?: string;
  /** Extra `--var KEY:VALUE` bindings. `FEDGE_ENV` is `local` unless given here. */
  vars?: Record<string, string>;
  /** Wrangler config file. @default `<repo>/wrangler.toml` */
  config?: string;
  /** How long to wait for the health probe. @default 60000 */
  readyTimeoutMs?: number;
  /** Echo wrangler's output. @default false */
  verbose?: boolean;
}

export interface LocalEdge {
  url: string;
  /** Process id of wrangler, also the id of the process group it and workerd run in (benchmarks read their CPU time). */
  pid: number | undefined;
  /** Everything wrangler printed so far (for error reports). */
  output(): string;
  stop(): Promise<void>;
}

function portOffset(): number {
  const raw = process.env.FEDGE_PORT_OFFSET;
  if (raw === undefined || raw === "") return 0;
  const offset = Number(raw);
  if (!Number.isInteger(offset) || offset < 0 || offset > 50_000)
    throw new RangeError(`FEDGE_PORT_OFFSET must be an integer in [0, 50000], got ${raw}`);
  return offset;
}

export async function startLocalEdge(options: LocalEdgeOptions = {}): Promise<LocalEdge> {
  const port = (options.port ?? 8787) + portOffset();
  const url = `http://127.0.0.1:${port}`;
  const args = [
    path.join(repoRoot, "node_modules/wrangler/bin/wrangler.js"),
    "dev",
    "--config",
    options.config ?? path.join(repoRoot, "wrangler.toml"),
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--persist-to",
    options.persistTo ?? path.join(repoRoot, ".wrangler/state"),
    "--show-interactive-dev-session=false",
  ];
  // The local edge is the dev environment: wrangler.toml's [vars] are production's (FEDGE_ENV=production).
  const vars = { FEDGE_ENV: "local", ...options.vars };
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", WRANGLER_LOG: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let log = "";
  const collect = (chunk: Buffer) => {
    const text = chunk.toString();
    log += text;
    if (log.length > 200_000) log = log.slice(-100_000);
    if (options.verbose) process.stderr.write(text);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });

  const stop = async () => {
    if (exited || child.pid === undefined) return;
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }, 5_000);
    if (!exited) await once(child, "exit");
    clearTimeout(timer);
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) throw new Error(`wrangler dev exited before it was ready:\n${log.slice(-4000)}`);
    try {
      // A bounded probe: a listener that accepts but never answers must not hang the wait.
      const res = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(5_000) });
      if (res.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev was not ready within the timeout:\n${log.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { url, pid: child.pid, output: () => log, stop };
}
