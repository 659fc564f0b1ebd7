/**
 * @module
 * X25519 (RFC 7748): a device's two key pairs of a round (one to receive ciphertexts, one to agree pairwise mask
 * seeds), and the pairwise seed s_uv = SHA-512(label ‖ round ‖ X25519(sk_u, pk_v))[0..32], the same for u and v.
 *
 * The scalar multiplication runs in WebCrypto (`deriveBits` with `{ name: "X25519" }`) where the runtime has it —
 * Node ≥ 18.4, workerd, Chromium ≥ 133, Firefox ≥ 130, Safari ≥ 17 — natively and a few hundred times faster than
 * JavaScript; elsewhere (older browsers and WebViews, runtimes without the Secure Curves algorithms) it falls back to
 * tweetnacl. Both take and give raw 32-byte keys and clamp the scalar the same way (RFC 7748 §5), so a WebCrypto device
 * and a tweetnacl device agree on the same secrets. The probe is a known-answer test (RFC 7748 §6.1), so a runtime
 * whose X25519 computes anything else is not used.
 */
import { fromBase64Url } from "@fedge/protocol";
import nacl from "tweetnacl";
import { SecAggError } from "./errors.ts";
import { cryptoRandomBytes, type RandomBytes } from "./shamir.ts";
import { framed } from "./transcript.ts";

export interface X25519KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** PKCS #8 PrivateKeyInfo of an X25519 key (RFC 8410 §7) up to the 32 raw bytes: WebCrypto imports no raw secret. */
const PKCS8_X25519_PREFIX = Uint8Array.of(
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x6e,
  0x04,
  0x22,
  0x04,
  0x20,
);

const hex = (s: string): Uint8Array => Uint8Array.from(s.match(/../g)!, (b) => parseInt(b, 16));
/** RFC 7748 §6.1: Alice's secret, Bob's public key, and their shared secret. */
const KAT = {
  secret: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
  theirs: "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
  shared: "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
};

let nativeProbe: Promise<boolean> | undefined;

/** Whether this runtime's WebCrypto computes X25519 (probed once, with RFC 7748's test vector). */
export function hasNativeX25519(): Promise<boolean> {
  nativeProbe ??= (async () => {
    try {
      const shared = await nativeScalarMult(hex(KAT.secret), hex(KAT.theirs));
      return shared.every((b, i) => b === hex(KAT.shared)[i]);
    } catch {
      return false;
    }
  })();
  return nativeProbe;
}

/** TEST ONLY: forces the tweetnacl path (`false`), or back to probing (`undefined`). */
export function useNativeX25519ForTesting(native: false | undefined): void {
  nativeProbe = native === false ? Promise.resolve(false) : undefined;
}

async function importSecret(secretKey: Uint8Array, extractable: boolean): Promise<CryptoKey> {
  const pkcs8 = new Uint8Array(PKCS8_X25519_PREFIX.length + 32);
  pkcs8.set(PKCS8_X25519_PREFIX);
  pkcs8.set(secretKey, PKCS8_X25519_PREFIX.length);
  return crypto.subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, extractable, ["deriveBits"]);
}

/** X25519's deriveBits parameters (workerd's types spell the `public` member differently; the runtime takes this). */
function agreeWith(theirs: CryptoKey): Parameters<SubtleCrypto["deriveBits"]>[0] {
  return { name: "X25519", public: theirs } as Parameters<SubtleCrypto["deriveBits"]>[0];
}

async function nativeScalarMult(secretKey: Uint8Array, theirPublicKey: Uint8Array): Promise<Uint8Array> {
  const [mine, theirs] = await Promise.all([
    importSecret(secretKey, false),
    crypto.subtle.importKey("raw", new Uint8Array(theirPublicKey), { name: "X25519" }, false, []),
  ]);
  return new Uint8Array(await crypto.subtle.deriveBits(agreeWith(theirs), mine, 256));
}

/** A fresh key pair: the secret is 32 bytes of `random`, the public key X25519(secret, 9). */
export async function generateX25519KeyPair(random: RandomBytes = cryptoRandomBytes): Promise<X25519KeyPair> {
  const secretKey = random(32);
  return { publicKey: await x25519PublicKey(secretKey), secretKey };
}

/** The public key of an X25519 secret key (to check a reconstructed secret against what was advertised). */
export async function x25519PublicKey(secretKey: Uint8Array): Promise<Uint8Array> {
  checkKey(secretKey, "secret");
  if (await hasNativeX25519()) {
    const jwk = (await crypto.subtle.exportKey("jwk", await importSecret(secretKey, true))) as JsonWebKey;
    return fromBase64Url(jwk.x!);
  }
  return nacl.scalarMult.base(secretKey);
}

/**
 * X25519(secretKey, pk) for each of `theirPublicKeys` (the secret imported once, the agreements run concurrently);
 * refuses a low-order public key, whose shared secret is all zeros whatever the secret (RFC 7748 §6.1), with
 * `SecAggError("bad-message")`.
 */
export async function x25519Many(secretKey: Uint8Array, theirPublicKeys: readonly Uint8Array[]): Promise<Uint8Array[]> {
  checkKey(secretKey, "secret");
  for (const pk of theirPublicKeys) checkKey(pk, "public");
  let shared: Uint8Array[];
  if (await hasNativeX25519()) {
    const mine = await importSecret(secretKey, false);
    shared = await Promise.all(
      theirPublicKeys.map(async (pk) => {
        try {
          const theirs = await crypto.subtle.importKey("raw", new Uint8Array(pk), { name: "X25519" }, false, []);
          return new Uint8Array(await crypto.subtle.deriveBits(agreeWith(theirs), mine, 256));
        } catch {
          // WebCrypto refuses an all-zero result itself (Secure Curves draft §6.2.3) with an OperationError.
          return new Uint8Array(32);
        }
      }),
    );
  } else {
    shared = theirPublicKeys.map((pk) => nacl.scalarMult(secretKey, pk));
  }
  if (shared.some((s) => s.every((b) => b === 0))) {
    throw new SecAggError("bad-message", "an X25519 public key is a low-order point");
  }
  return shared;
}

/** X25519(secretKey, theirPublicKey), as {@link x25519Many} for one key. */
export async function x25519(secretKey: Uint8Array, theirPublicKey: Uint8Array): Promise<Uint8Array> {
  return (await x25519Many(secretKey, [theirPublicKey]))[0]!;
}

/** The pairwise mask seed of a round from X25519(sk_u, pk_v). */
export function pairwiseSeedOf(roundId: string, shared: Uint8Array): Uint8Array {
  return nacl.hash(framed("pair-seed", [roundId, shared])).subarray(0, 32);
}

/** The pairwise mask seeds of a round with each of `theirPublicKeys`; refuses a low-order public key. */
export async function pairwiseSeeds(
  roundId: string,
  secretKey: Uint8Array,
  theirPublicKeys: readonly Uint8Array[],
): Promise<Uint8Array[]> {
  return (await x25519Many(secretKey, theirPublicKeys)).map((shared) => pairwiseSeedOf(roundId, shared));
}

/** The pairwise mask seed of a round with one device; refuses a low-order public key. */
export async function pairwiseSeed(
  roundId: string,
  secretKey: Uint8Array,
  theirPublicKey: Uint8Array,
): Promise<Uint8Array> {
  return (await pairwiseSeeds(roundId, secretKey, [theirPublicKey]))[0]!;
}

function checkKey(key: Uint8Array, what: string): void {
  if (!(key instanceof Uint8Array) || key.length !== 32) {
    throw new SecAggError("bad-message", `an X25519 ${what} key has 32 bytes`);
  }
}
