/**
 * @module
 * Where a device's SecAgg+ time goes, per graph neighbour (issue 20; bench/suites/secagg.ts reports it): each
 * primitive the client runs per neighbour, timed alone in this process as the client calls it, in CPU time of the
 * process (every thread: Node's WebCrypto runs its jobs on libuv's pool, which a V8 CPU profile does not see), times
 * how often the client runs it per neighbour when a third of the roster drops after masking (every neighbour shares
 * and masks, two thirds sign U3, the device verifies t of those signatures).
 *
 * `node bench/secagg-attribution.ts [n ...]` prints the table for each n (default 100 300).
 */
import nacl from "tweetnacl";
import { fromBase64Url, toBase64Url } from "@fedge/protocol";
import {
  chooseParameters,
  envelopeKey,
  expandMask,
  openEnvelope,
  pairwiseSeedOf,
  sealEnvelope,
  SHARE_BYTES,
  splitSecrets,
  verifyEd25519,
  x25519Many,
} from "@fedge/secagg";

export interface AttributionRow {
  primitive: string;
  /** Native WebCrypto work (the floor no JavaScript change removes) or JavaScript. */
  kind: "webcrypto" | "javascript";
  /** CPU µs of one call. */
  microseconds: number;
  /** Calls per neighbour in a round. */
  perNeighbour: number;
}

export interface Attribution {
  devices: number;
  neighbours: number;
  threshold: number;
  rows: AttributionRow[];
  /** Σ µs × calls over the WebCrypto rows: the per-neighbour floor with native crypto. */
  webCryptoFloorUs: number;
  /** Σ µs × calls over every row. */
  totalUs: number;
}

function cpuUs(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** Median CPU µs of `fn` over `reps` runs, after 2 warm-up runs. */
async function cpuOf(fn: () => unknown, reps = 9): Promise<number> {
  for (let i = 0; i < 2; i++) await fn();
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const s = cpuUs();
    await fn();
    t.push(cpuUs() - s);
  }
  t.sort((a, b) => a - b);
  return t[t.length >> 1]!;
}

/** The per-neighbour attribution at `devices` devices, d' values in Z_{2^bits}, a third dropping after masking. */
export async function attributeSecAgg(devices: number, length = 8192, bits = 20): Promise<Attribution> {
  const p = chooseParameters(devices, bits, length);
  const k = p.neighbours;
  const t = p.threshold;
  const signing = k - Math.round(k / 3); // neighbours that sign U3
  const keys = Array.from({ length: k }, () => nacl.box.keyPair().publicKey);
  const secret = nacl.randomBytes(32);
  const message = nacl.randomBytes(120);
  const signers = Array.from({ length: k }, () => nacl.sign.keyPair());
  const signatures = signers.map((s) => nacl.sign.detached(message, s.secretKey));
  const points = Array.from({ length: k }, (_, i) => i + 1);
  const shared = nacl.randomBytes(32);
  const payload = nacl.randomBytes(2 * SHARE_BYTES);
  const key = envelopeKey("round", "dev_a", "dev_b", shared);
  const sealed = sealEnvelope(payload, key);
  const seeds = Array.from({ length: k }, () => nacl.randomBytes(32));
  const masked = new Uint32Array(length);
  const mask = new Uint32Array(length);
  const per100 = async (fn: () => void) =>
    (await cpuOf(() => {
      for (let i = 0; i < 100; i++) fn();
    })) / 100;
  const rows: AttributionRow[] = [
    {
      primitive: "X25519 agreement with the key import (batch of k)",
      kind: "webcrypto",
      microseconds: (await cpuOf(() => x25519Many(secret, keys))) / k,
      perNeighbour: 2,
    },
    {
      primitive: "Ed25519 verify, key import cached (batch of k)",
      kind: "webcrypto",
      microseconds:
        (await cpuOf(() => Promise.all(signatures.map((s, i) => verifyEd25519(message, s, signers[i]!.publicKey))))) /
        k,
      perNeighbour: 1 + Math.min(t, signing) / k,
    },
    {
      primitive: `AES-256-CTR mask, d' = ${length}, with the key import (batch of k)`,
      kind: "webcrypto",
      microseconds: (await cpuOf(() => Promise.all(seeds.map((s) => expandMask(s, length, bits))))) / k,
      perNeighbour: 1,
    },
    {
      primitive: "Shamir split of both secrets, per point (GF(2^16))",
      kind: "javascript",
      microseconds: (await cpuOf(() => splitSecrets([secret, secret], points, t))) / k,
      perNeighbour: 1,
    },
    {
      primitive: "envelope keys (2 SHA-512) + seal (XSalsa20-Poly1305)",
      kind: "javascript",
      microseconds: await per100(() => {
        envelopeKey("round", "dev_a", "dev_b", shared);
        sealEnvelope(payload, envelopeKey("round", "dev_b", "dev_a", shared));
      }),
      perNeighbour: 1,
    },
    {
      primitive: "envelope open",
      kind: "javascript",
      microseconds: await per100(() => openEnvelope(sealed, key)),
      perNeighbour: 1,
    },
    {
      primitive: "pairwise seed (SHA-512)",
      kind: "javascript",
      microseconds: await per100(() => pairwiseSeedOf("round", shared)),
      perNeighbour: 1,
    },
    {
      primitive: `adding a mask into the input (d' = ${length})`,
      kind: "javascript",
      microseconds:
        (await cpuOf(() => {
          for (let j = 0; j < k; j++) for (let i = 0; i < length; i++) masked[i] = masked[i]! + mask[i]!;
        })) / k,
      perNeighbour: 1,
    },
    {
      primitive: "base64url of an envelope and a share (codec)",
      kind: "javascript",
      microseconds: await per100(() => fromBase64Url(toBase64Url(sealed))),
      perNeighbour: 2,
    },
  ];
  const sum = (rs: AttributionRow[]) => rs.reduce((s, r) => s + r.microseconds * r.perNeighbour, 0);
  return {
    devices,
    neighbours: k,
    threshold: t,
    rows,
    webCryptoFloorUs: sum(rows.filter((r) => r.kind === "webcrypto")),
    totalUs: sum(rows),
  };
}

/** The attribution as a markdown table. */
export function attributionTable(a: Attribution): string {
  const lines = [
    `n = ${a.devices}: k = ${a.neighbours}, t = ${a.threshold}`,
    "| primitive | kind | µs a call | calls per neighbour | µs per neighbour | ms × k |",
    "|---|---|---:|---:|---:|---:|",
  ];
  for (const r of a.rows) {
    const us = r.microseconds * r.perNeighbour;
    lines.push(
      `| ${r.primitive} | ${r.kind} | ${r.microseconds.toFixed(1)} | ${r.perNeighbour.toFixed(2)} | ${us.toFixed(1)} | ${((us * a.neighbours) / 1000).toFixed(2)} |`,
    );
  }
  lines.push(
    `| WebCrypto floor | | | | ${a.webCryptoFloorUs.toFixed(1)} | ${((a.webCryptoFloorUs * a.neighbours) / 1000).toFixed(2)} |`,
    `| all primitives | | | | ${a.totalUs.toFixed(1)} | ${((a.totalUs * a.neighbours) / 1000).toFixed(2)} |`,
  );
  return lines.join("\n");
}

if (import.meta.main) {
  const sizes = process.argv.slice(2).map(Number);
  for (const n of sizes.length > 0 ? sizes : [100, 300]) console.log(`\n${attributionTable(await attributeSecAgg(n))}`);
}
