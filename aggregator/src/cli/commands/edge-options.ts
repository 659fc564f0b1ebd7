/**
 * @module
 * What the commands that talk to an edge (`fedge aggregate`, `audit`, `rollback`) share: their flags (`EDGE_FLAGS`)
 * and how their usage writes them (`edgeUsageHeader`, `EDGE_HELP`), the edge URL, the aggregator key file, the
 * secrets read from a file or the environment (admin token, app API key), how admin requests are authenticated, the
 * Backend choice, and how a population config is resolved (flags over `--config` over the runner state of the
 * checkpoint directory).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { toBase64Url } from "@fedge/protocol";
import { ConfigError, configFromFlags, type PopulationConfig } from "../../config.ts";
import { loadOrCreateSigningKey, type SigningKey } from "../../export.ts";
import { EdgeAdminClient } from "../../edge/admin-client.ts";
import { UsageError } from "../command.ts";

/** parseArgs options every edge command accepts. */
export const EDGE_FLAGS = {
  edge: { type: "string" },
  "checkpoint-dir": { type: "string" },
  "signing-key": { type: "string" },
  "admin-token": { type: "string" },
  "admin-token-file": { type: "string" },
  "register-key": { type: "boolean" },
} as const;

/** Where a help line's description starts, and how wide the help text is. */
const HELP_COLUMN = 27;
const HELP_WIDTH = 118;

/** One option of a usage text: `  --flag ARG` then `text`, wrapped under its column. */
export function helpLine(flag: string, text: string): string {
  const lines: string[] = [];
  let line = `  ${flag}`.padEnd(HELP_COLUMN - 1);
  let fresh = true;
  for (const word of text.split(" ")) {
    if (!fresh && line.length + 1 + word.length > HELP_WIDTH) {
      lines.push(line);
      line = " ".repeat(HELP_COLUMN - 1);
      fresh = true;
    }
    line += ` ${word}`;
    fresh = false;
  }
  lines.push(line);
  return lines.join("\n");
}

/** The synopsis of the admin credential: the environment or a file, never a flag value (it would show in ps). */
export const ADMIN_TOKEN_SYNOPSIS = "[env FEDGE_ADMIN_TOKEN | --admin-token-file FILE]";

/**
 * The `Usage:` header of an edge command: `fedge COMMAND --edge URL --model NAME` and `first`, then each of `more` on
 * its own line under the first flag.
 */
export function edgeUsageHeader(command: string, first: string, ...more: string[]): string {
  const lead = `  fedge ${command} `;
  const indent = " ".repeat(lead.length);
  return ["Usage:", `${lead}--edge URL --model NAME ${first}`, ...more.map((l) => indent + l)].join("\n") + "\n";
}

/** The help lines of the edge flags; a command adds what the flag means for it. */
export const EDGE_HELP = {
  edge: helpLine("--edge URL", "the edge, e.g. http://127.0.0.1:8787"),
  adminTokenFile: (more: string) =>
    helpLine(
      "--admin-token-file FILE",
      `operator token, first line of FILE (default: env FEDGE_ADMIN_TOKEN; never a flag value, which would show in ps)${more}`,
    ),
  signingKey: (more: string) =>
    helpLine("--signing-key FILE", `aggregator Ed25519 key (created 0600 if missing${more})`),
  apiKeyFile: (more: string) =>
    helpLine("--api-key-file FILE", `the app API key${more}, first line of FILE (default: env FEDGE_API_KEY)`),
  checkpointDir: (more: string) => helpLine("--checkpoint-dir DIR", more),
} as const;

/** Default key file inside the checkpoint directory. */
export const DEFAULT_KEY_FILE = "aggregator-key.json";

export type FlagValues = Record<string, string | boolean | undefined>;

/** `--edge`, checked: an http(s) URL without a trailing slash. */
export function edgeUrl(values: FlagValues): string {
  const v = values.edge;
  if (typeof v !== "string") throw new UsageError("missing --edge URL (e.g. --edge http://127.0.0.1:8787)");
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new UsageError(`--edge must be an http(s) URL, got "${v}"`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:")
    throw new UsageError(`--edge must be an http(s) URL, got "${v}"`);
  return v.replace(/\/+$/, "");
}

/** A non-negative integer flag (`fallback` when absent). */
export function intFlag(values: FlagValues, name: string, fallback: number, min: number): number {
  const v = values[name];
  if (v === undefined) return fallback;
  if (typeof v !== "string" || !/^\+?\d+$/.test(v.trim()) || !Number.isSafeInteger(Number(v)) || Number(v) < min)
    throw new UsageError(`--${name} must be an integer >= ${min}, got "${String(v)}"`);
  return Number(v);
}

/**
 * The aggregator key: `--signing-key FILE`, else `<checkpoint-dir>/aggregator-key.json` (created 0600 when missing).
 * `null` when neither is given.
 */
export async function signingKeyOf(values: FlagValues): Promise<{ key: SigningKey; path: string } | null> {
  const dir = values["checkpoint-dir"];
  const path =
    typeof values["signing-key"] === "string"
      ? values["signing-key"]
      : typeof dir === "string"
        ? join(dir, DEFAULT_KEY_FILE)
        : null;
  if (path === null) return null;
  return { key: await loadOrCreateSigningKey(path), path };
}

/**
 * A secret given as `--FLAG FILE` (the file's first line; a missing or empty file is a usage error), else the
 * environment's `envName` (empty = unset); undefined when neither.
 */
async function secretOf(
  values: FlagValues,
  flag: string,
  env: NodeJS.ProcessEnv,
  envName: string,
): Promise<string | undefined> {
  const file = values[flag];
  if (typeof file === "string") {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (e) {
      throw new UsageError(`--${flag} ${file}: ${(e as Error).message}`);
    }
    const secret = text.split(/\r?\n/)[0]!.trim();
    if (secret === "") throw new UsageError(`--${flag} ${file} is empty`);
    return secret;
  }
  const fromEnv = env[envName]?.trim();
  return fromEnv ? fromEnv : undefined;
}

/**
 * The operator token: `--admin-token-file FILE` (its first line), else the environment's `FEDGE_ADMIN_TOKEN` (empty =
 * unset). `--admin-token T` is refused: a flag's value is visible to every user of the machine in `ps`.
 */
export async function adminTokenOf(
  values: FlagValues,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  if (values["admin-token"] !== undefined) {
    throw new UsageError(
      "--admin-token is not accepted (a flag's value shows in ps): set FEDGE_ADMIN_TOKEN, or give --admin-token-file FILE",
    );
  }
  return secretOf(values, "admin-token-file", env, "FEDGE_ADMIN_TOKEN");
}

/** The app API key: `--api-key-file FILE` (its first line), else the environment's `FEDGE_API_KEY`; required. */
export async function apiKeyOf(values: FlagValues, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const key = await secretOf(values, "api-key-file", env, "FEDGE_API_KEY");
  if (!key) throw new UsageError("the canaries need the app's API key: set FEDGE_API_KEY or give --api-key-file");
  return key;
}

/** `--backend auto|cpu|webgpu` (default auto: `createBackend` then reads FEDGE_BACKEND). */
export function backendOf(values: FlagValues): "auto" | "cpu" | "webgpu" {
  const name = (values.backend as string | undefined) ?? "auto";
  if (name !== "auto" && name !== "cpu" && name !== "webgpu")
    throw new UsageError(`--backend must be auto, cpu or webgpu, got "${name}"`);
  return name;
}

/**
 * The admin client. With an admin token (and no `--register-key`) requests carry the token; otherwise they are signed
 * with the aggregator key, which the edge must trust (`FEDGE_AGGREGATOR_PUBLIC_KEY`, or `--register-key`, which
 * registers it first with the admin token).
 */
export async function adminClientOf(
  url: string,
  values: FlagValues,
  key: SigningKey | null,
  log: (line: string) => void,
): Promise<EdgeAdminClient> {
  const token = await adminTokenOf(values);
  if (values["register-key"]) {
    if (!token)
      throw new UsageError("--register-key needs the admin token (FEDGE_ADMIN_TOKEN or --admin-token-file FILE)");
    if (!key) throw new UsageError("--register-key needs an aggregator key (--signing-key FILE or --checkpoint-dir)");
    const operator = new EdgeAdminClient({ baseUrl: url, adminToken: token });
    await operator.registerAggregatorKey(toBase64Url(key.publicKey));
    log(`registered aggregator key ${toBase64Url(key.publicKey)} on ${url}`);
    return new EdgeAdminClient({ baseUrl: url, signingKey: key.secretKey, adminToken: token });
  }
  if (token) return new EdgeAdminClient({ baseUrl: url, adminToken: token });
  if (!key)
    throw new UsageError(
      "no admin credential: set FEDGE_ADMIN_TOKEN (or --admin-token-file FILE), or give an aggregator key the edge trusts (--signing-key FILE)",
    );
  return new EdgeAdminClient({ baseUrl: url, signingKey: key.secretKey });
}

/** Reads a `--config` JSON file as a plain object (bad file or JSON → usage error). */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    throw new UsageError(`--config ${path}: ${(e as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new UsageError(`--config ${path}: expected a JSON object`);
  return value as Record<string, unknown>;
}

/** Flags over `base`, validated with the PopulationConfig zod schema; a bad config is a usage error naming each field. */
export function resolveConfig(values: FlagValues, base: Record<string, unknown>): PopulationConfig {
  try {
    return configFromFlags(values, base);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
}

/** Runs `fn`, turning undici's bare "fetch failed" into a message that names the edge and the cause. */
export async function withEdge<T>(url: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof TypeError && e.message === "fetch failed") {
      const cause = e.cause as { code?: string; message?: string } | undefined;
      throw new Error(`cannot reach the edge at ${url}: ${cause?.code ?? cause?.message ?? "network error"}`, {
        cause: e,
      });
    }
    throw e;
  }
}
