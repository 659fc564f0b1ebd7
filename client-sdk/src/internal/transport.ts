/**
 * @module
 * The one HTTP path of the SDK: base URL, `Authorization: Bearer <apiKey>`, a per-attempt timeout, the caller's
 * AbortSignal, retries (see retry.ts), and the mapping of error responses onto typed errors. A request body is built
 * once and the very same bytes are sent on every attempt (an upload retry resends the same signed update and nonce).
 */
import { APIConnectionError, APIConnectionTimeoutError, FedgeAPIError, FedgeClientError } from "../core/errors.ts";
import { uniform, type RandomSource } from "./platform.ts";
import { abortError, withRetries } from "./retry.ts";

/** Per-call options accepted by every client method. */
export interface RequestOptions {
  /** Aborts the call (and any wait between retries). */
  signal?: AbortSignal | undefined;
  /** Overrides the client's `timeoutMs` for each attempt of this call. */
  timeoutMs?: number | undefined;
  /** Overrides the client's `maxRetries` for this call. */
  maxRetries?: number | undefined;
}

export interface TransportConfig {
  baseUrl: string;
  apiKey: string;
  fetch: typeof fetch;
  maxRetries: number;
  timeoutMs: number;
  random: RandomSource;
  userAgent?: string | undefined;
}

export interface HttpRequest {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Path under the base URL, starting with `/`. */
  path: string;
  /** JSON body (serialised once). */
  json?: unknown;
  /** Raw body, sent as is on every attempt. */
  body?: Uint8Array;
  contentType?: string;
  headers?: Record<string, string>;
  /** Treat 304 Not Modified as a success (conditional GET). */
  allowNotModified?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

const TIMEOUT = Symbol("timeout");

export class Transport {
  readonly config: TransportConfig;
  constructor(config: TransportConfig) {
    this.config = config;
  }

  /** Sends the request with retries; resolves with a 2xx (or allowed 304) response, else throws a typed error. */
  async request(req: HttpRequest, options: RequestOptions = {}): Promise<HttpResponse> {
    const url = this.config.baseUrl + req.path;
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.config.apiKey}`,
      accept: "application/json",
      ...req.headers,
    };
    let body: Uint8Array | string | undefined;
    if (req.json !== undefined) {
      body = JSON.stringify(req.json);
      headers["content-type"] = "application/json";
    } else if (req.body !== undefined) {
      body = req.body;
      headers["content-type"] = req.contentType ?? "application/octet-stream";
    }
    const timeoutMs = options.timeoutMs ?? this.config.timeoutMs;
    const maxRetries = options.maxRetries ?? this.config.maxRetries;
    return withRetries(() => this.attempt(url, req, headers, body, timeoutMs, options.signal), {
      maxRetries,
      signal: options.signal,
      uniform: () => uniform(this.config.random),
    });
  }

  /** Sends a request and parses the JSON answer. */
  async json<T>(req: HttpRequest, options?: RequestOptions): Promise<T> {
    const res = await this.request(req, options);
    try {
      return JSON.parse(new TextDecoder().decode(res.body)) as T;
    } catch (cause) {
      throw new FedgeAPIError({
        status: res.status,
        code: "invalid_response",
        message: `${req.method} ${req.path}: the edge answered ${res.status} with a body that is not JSON`,
        requestId: res.headers.get("x-request-id") ?? undefined,
        headers: res.headers,
        cause,
      });
    }
  }

  private async attempt(
    url: string,
    req: HttpRequest,
    headers: Record<string, string>,
    body: Uint8Array | string | undefined,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<HttpResponse> {
    if (signal?.aborted) throw abortError(signal);
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(TIMEOUT), timeoutMs);
    try {
      let res: Response;
      let bytes: Uint8Array;
      try {
        const init: RequestInit = { method: req.method, headers, signal: controller.signal };
        if (body !== undefined) init.body = body as BodyInit;
        res = await this.config.fetch(url, init);
        bytes = new Uint8Array(await res.arrayBuffer());
      } catch (cause) {
        if (signal?.aborted) throw abortError(signal);
        if (controller.signal.aborted && controller.signal.reason === TIMEOUT) {
          throw new APIConnectionTimeoutError({
            message: `${req.method} ${req.path} timed out after ${timeoutMs} ms`,
            cause,
          });
        }
        if (cause instanceof FedgeClientError) throw cause;
        throw new APIConnectionError({
          message: `${req.method} ${req.path}: connection error (${(cause as Error)?.message ?? String(cause)})`,
          cause,
        });
      }
      if ((res.status >= 200 && res.status < 300) || (res.status === 304 && req.allowNotModified)) {
        return { status: res.status, headers: res.headers, body: bytes };
      }
      throw FedgeAPIError.generate(res.status, parseBody(bytes), res.headers);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

function parseBody(bytes: Uint8Array): unknown {
  const text = new TextDecoder().decode(bytes);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
