/**
 * @module
 * Argument checks of `FedgeClient` (each failure names the bad parameter) and light shape checks of the edge's
 * answers (the SDK core carries no zod; the edge validates with the @fedge/protocol zod schemas).
 */
import type { ModelManifest, RoundTask } from "@fedge/protocol";
import { FedgeAPIError, InvalidInputError, NotFoundError } from "./core/errors.ts";
import type { FedgeClientOptions } from "./types.ts";

export function checkOptions(o: FedgeClientOptions): void {
  if (!o || typeof o !== "object") throw new InvalidInputError("options", "must be an object");
  if (typeof o.baseUrl !== "string" || !/^https?:\/\/[^/\s]+(\/[^\s]*)?$/.test(o.baseUrl)) {
    throw new InvalidInputError("baseUrl", `must be an http(s) URL, got ${JSON.stringify(o.baseUrl)}`);
  }
  // The API key and every signed update travel in the clear over http: only to this machine.
  if (o.baseUrl.startsWith("http://") && !isLoopbackHost(new URL(o.baseUrl).hostname)) {
    throw new InvalidInputError(
      "baseUrl",
      `must be https:// (plain http:// only to a loopback address: localhost, 127.0.0.0/8, [::1]), got ${JSON.stringify(o.baseUrl)}`,
    );
  }
  if (typeof o.apiKey !== "string" || o.apiKey.length === 0 || /\s/.test(o.apiKey)) {
    throw new InvalidInputError("apiKey", "must be a non-empty string without whitespace");
  }
  if (o.maxRetries !== undefined && !(Number.isInteger(o.maxRetries) && o.maxRetries >= 0 && o.maxRetries <= 10)) {
    throw new InvalidInputError("maxRetries", `must be an integer in 0..10, got ${o.maxRetries}`);
  }
  if (o.timeoutMs !== undefined && !(Number.isFinite(o.timeoutMs) && o.timeoutMs > 0)) {
    throw new InvalidInputError("timeoutMs", `must be a positive number, got ${o.timeoutMs}`);
  }
  if (o.fetch !== undefined && typeof o.fetch !== "function")
    throw new InvalidInputError("fetch", "must be a function");
  if (o.random !== undefined && typeof o.random !== "function")
    throw new InvalidInputError("random", "must be a function");
}

/** Whether a URL hostname is this machine: `localhost`, 127.0.0.0/8 or `[::1]`. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

const MODEL_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
export function checkModelName(model: unknown): asserts model is string {
  if (typeof model !== "string" || !MODEL_NAME.test(model)) {
    throw new InvalidInputError(
      "model",
      `must be a model name (lowercase letters, digits, dashes), got ${JSON.stringify(model)}`,
    );
  }
}
export function checkVersion(version: unknown): asserts version is number | undefined {
  if (version !== undefined && !(Number.isInteger(version) && (version as number) >= 1)) {
    throw new InvalidInputError("version", `must be an integer >= 1, got ${String(version)}`);
  }
}

export function invalidResponse(what: string, body: unknown): FedgeAPIError {
  return new FedgeAPIError({
    code: "invalid_response",
    message: `${what}: unexpected response ${JSON.stringify(body)?.slice(0, 200)}`,
  });
}

export function isTask(t: unknown): t is RoundTask {
  const x = t as RoundTask | undefined;
  return (
    !!x &&
    typeof x.round_id === "string" &&
    typeof x.model === "string" &&
    Number.isInteger(x.model_version) &&
    typeof x.clip_norm === "number" &&
    typeof x.nonce === "string" &&
    typeof x.deadline === "string"
  );
}

/** `GET /v1/models/:name` (`ModelDetail`) → the serving version and its manifest. */
export function parseModelInfo(info: Record<string, unknown>): {
  version: number;
  manifest: ModelManifest | undefined;
} {
  const v = info?.serving_version;
  if (v === null) {
    throw new NotFoundError({
      status: 404,
      code: "version_not_found",
      message: `model ${String(info.name)} has no serving version`,
    });
  }
  if (!Number.isInteger(v)) throw invalidResponse("model info", info);
  const manifest = (info.serving ?? undefined) as ModelManifest | undefined;
  return { version: v as number, manifest: manifest && manifest.version === v ? manifest : undefined };
}
