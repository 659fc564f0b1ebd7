/**
 * @module
 * Argument checks of `FedgeClient` (each failure names the bad parameter) and light shape checks of the edge's
 * answers (the SDK core carries no zod; the edge validates with the @fedge/protocol zod schemas).
 */
import type { ModelManifest, RoundTask } from "@fedge/protocol";
import { FedgeAPIError, InvalidInputError, NotFoundError } from "./core/errors.ts";
import { fromBase64Url } from "./internal/encoding.ts";
import type { FedgeClientOptions, PrivacyPolicy, ResolvedPrivacyPolicy } from "./types.ts";

/** The privacy policy of a client that sets none: refuses `none` and weak privacy (see `PrivacyPolicy`). */
export const DEFAULT_PRIVACY_POLICY: ResolvedPrivacyPolicy = Object.freeze({
  allowedModes: Object.freeze(["central", "local"] as const),
  maxLocalEpsilon: 8,
  minLocalNoiseMultiplier: undefined,
  maxPopulationEpsilon: 10,
  maxDelta: 1e-5,
  maxDeviceEpsilon: undefined,
});

const MODES = ["central", "local", "distributed", "none"] as const;

/** Fills in the defaults of a policy and checks every field (throws `InvalidInputError` naming it). */
export function resolvePrivacyPolicy(p: PrivacyPolicy | undefined): ResolvedPrivacyPolicy {
  if (p === undefined) return DEFAULT_PRIVACY_POLICY;
  if (!p || typeof p !== "object") throw new InvalidInputError("privacyPolicy", "must be an object");
  const modes = p.allowedModes ?? DEFAULT_PRIVACY_POLICY.allowedModes;
  if (!Array.isArray(modes) || modes.length === 0 || modes.some((m) => !(MODES as readonly unknown[]).includes(m))) {
    throw new InvalidInputError(
      "privacyPolicy.allowedModes",
      `must be a non-empty array of "central", "local", "distributed", "none", got ${JSON.stringify(modes)}`,
    );
  }
  const positive = (name: string, v: unknown, fallback: number): number => {
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new InvalidInputError(`privacyPolicy.${name}`, `must be a finite number > 0, got ${String(v)}`);
    }
    return v;
  };
  const maxDelta = positive("maxDelta", p.maxDelta, DEFAULT_PRIVACY_POLICY.maxDelta);
  if (!(maxDelta < 1)) throw new InvalidInputError("privacyPolicy.maxDelta", `must be in (0, 1), got ${maxDelta}`);
  return Object.freeze({
    allowedModes: Object.freeze([...new Set(modes)]),
    maxLocalEpsilon: positive("maxLocalEpsilon", p.maxLocalEpsilon, DEFAULT_PRIVACY_POLICY.maxLocalEpsilon),
    minLocalNoiseMultiplier:
      p.minLocalNoiseMultiplier === undefined
        ? undefined
        : positive("minLocalNoiseMultiplier", p.minLocalNoiseMultiplier, 0),
    maxPopulationEpsilon: positive(
      "maxPopulationEpsilon",
      p.maxPopulationEpsilon,
      DEFAULT_PRIVACY_POLICY.maxPopulationEpsilon,
    ),
    maxDelta,
    maxDeviceEpsilon:
      p.maxDeviceEpsilon === undefined ? undefined : positive("maxDeviceEpsilon", p.maxDeviceEpsilon, 0),
  });
}

/** A pinned Ed25519 key option as 32 bytes, or undefined (throws `InvalidInputError` naming `option` otherwise). */
export function resolveAggregatorKey(
  key: string | Uint8Array | undefined,
  option = "aggregatorPublicKey",
): Uint8Array | undefined {
  if (key === undefined) return undefined;
  let bytes: Uint8Array | undefined;
  if (key instanceof Uint8Array) bytes = key.slice();
  else if (typeof key === "string") {
    try {
      bytes = fromBase64Url(key);
    } catch {
      bytes = undefined;
    }
  }
  if (!bytes || bytes.length !== 32) {
    throw new InvalidInputError(option, "must be a 32-byte Ed25519 public key (bytes or base64url)");
  }
  return bytes;
}

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
  if (o.random === undefined && typeof (globalThis as { crypto?: Crypto }).crypto?.getRandomValues !== "function") {
    throw new InvalidInputError(
      "random",
      "is required where crypto.getRandomValues is missing (React Native: import 'react-native-get-random-values' " +
        "before the SDK, or pass a CSPRNG as `random`)",
    );
  }
  resolvePrivacyPolicy(o.privacyPolicy);
  resolveAggregatorKey(o.aggregatorPublicKey);
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
    typeof x.privacy_mode === "string" &&
    (typeof x.clip_norm === "number" || (x.clip_norm === undefined && x.privacy_mode === "none")) &&
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
