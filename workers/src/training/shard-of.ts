/**
 * @module
 * Which coordinator shard serves a device: HMAC-SHA-256 of the device id under a key only the edge holds, reduced
 * mod S. A device cannot pick or predict its shard (it cannot compute the MAC), so it cannot pile onto one shard or
 * follow another device. The key is derived (HKDF-SHA-256) from the edge's signing seed, `FEDGE_EDGE_SIGNING_KEY`, so
 * no second secret has to be provisioned; it must stay the same for as long as rounds that used it are read, since a
 * round's updates and check-ins are found again by recomputing the shard with the S the round recorded.
 *
 * The reduction is a 64-bit value mod S: its bias is below S / 2⁶⁴, nothing a coin flipped per device could notice.
 */
import { fromBase64Url } from "@fedge/protocol";
import type { Bindings } from "../env.ts";
import { edgeKeyPair } from "./edge-key.ts";

const INFO = new TextEncoder().encode("fedge coordinator shard assignment v1");

let cached: { seed: string; key: Promise<CryptoKey> } | null = null;

function shardKey(env: Pick<Bindings, "FEDGE_EDGE_SIGNING_KEY">): Promise<CryptoKey> {
  edgeKeyPair(env); // 500 `internal` when the seed is missing or bad
  const seed = env.FEDGE_EDGE_SIGNING_KEY!.trim();
  if (cached && cached.seed === seed) return cached.key;
  const key = (async () => {
    const ikm = await crypto.subtle.importKey("raw", fromBase64Url(seed), "HKDF", false, ["deriveKey"]);
    return crypto.subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: INFO },
      ikm,
      { name: "HMAC", hash: "SHA-256", length: 256 },
      false,
      ["sign"],
    );
  })();
  cached = { seed, key };
  return key;
}

/** The shard (0 … shards − 1) serving `deviceId` when the population has `shards` shards; 0 without a key for S = 1. */
export async function shardOf(
  env: Pick<Bindings, "FEDGE_EDGE_SIGNING_KEY">,
  deviceId: string,
  shards: number,
): Promise<number> {
  if (!(Number.isSafeInteger(shards) && shards >= 1)) throw new RangeError(`shardOf: bad shard count ${shards}`);
  if (shards === 1) return 0;
  const mac = new DataView(await crypto.subtle.sign("HMAC", await shardKey(env), new TextEncoder().encode(deviceId)));
  return Number(mac.getBigUint64(0) % BigInt(shards));
}
