/**
 * @module
 * The directory of API keys: each key is its own AccountLedger Durable Object (found by id), so nothing could list
 * them. Creating a key also writes `api-keys/<id>` to the REGISTRY KV namespace, which the operator dashboard lists.
 * Only the admin route that creates a key writes here; the entry holds the id alone (no secret, no hash).
 */
import type { Bindings } from "../../env.ts";
import { DEV_KEY_ID } from "./api-key.ts";

const PREFIX = "api-keys/";

/** Records a newly created key id. */
export async function recordKeyId(env: Bindings, id: string): Promise<void> {
  await env.REGISTRY.put(PREFIX + id, "");
}

/**
 * Every recorded key id, oldest listing order (KV sorts by key), plus the local bootstrap key where this edge accepts
 * it. KV listings are eventually consistent across locations: a key created a moment ago elsewhere may be missing.
 */
export async function listKeyIds(env: Bindings): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await env.REGISTRY.list({ prefix: PREFIX, ...(cursor ? { cursor } : {}) });
    for (const k of page.keys) ids.push(k.name.slice(PREFIX.length));
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  if (env.FEDGE_ENV === "local" && env.FEDGE_DEV_API_KEY) ids.unshift(DEV_KEY_ID);
  return ids;
}
