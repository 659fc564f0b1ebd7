/**
 * @module
 * Secure aggregation (@fedge/secagg, SecAgg+) per round at 100 and 300 devices, a third of them dropping after masking
 * (the worst case the rounds must finish in), d' = 10 000 values in Z_{2^20}. Measured on the real client and server
 * state machines with JSON messages parsed by the wire schemas, all in this process. The device measures here are the
 * protocol's share, for attribution, with no goal: the goal (a device's whole distributed round ≤ 2× its central
 * round) is measured in the distributed-device suite (`device-round-secagg-*`).
 * - device CPU time (its own protocol steps, median device) against central mode's device step: encode, SHA-256 digest
 *   and Ed25519-sign an update of the same d' float32 values (codec v3);
 * - device bytes (sent + received JSON bodies, median device) against central mode's signed upload of the same update;
 * - edge CPU time (all server steps, unmasking the dropped devices included) against central mode's ingest of the
 *   same number of updates: decode + WebCrypto Ed25519 verify of each;
 * - the device's CPU time per graph neighbour against the floor its native WebCrypto calls set per neighbour (2 X25519,
 *   1 + t/k Ed25519 verifications, 1 AES-CTR mask; bench/secagg-attribution.ts, measured in this run): what
 *   JavaScript adds on top of what no JavaScript change removes.
 */
import nacl from "tweetnacl";
import { decodeUpdate, encodeUpdate, verifyUpdateSignature, type UpdateFields } from "@fedge/protocol";
import { chooseParameters } from "@fedge/secagg";
import { simulateRound, type DropPoint } from "@fedge/secagg/testing";
import { attributeSecAgg, attributionTable } from "../secagg-attribution.ts";
import { measure, type BenchMeasure } from "../types.ts";

const LENGTH = 10_000;
const BITS = 20;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

export default async function run(): Promise<BenchMeasure[]> {
  const key = nacl.sign.keyPair();
  // the update's values only set its bytes; uniform in [−0.5, 0.5) from the CSPRNG, as every random value in the project
  const values = Float32Array.from(crypto.getRandomValues(new Uint32Array(LENGTH)), (u) => u / 2 ** 32 - 0.5);
  const fields: UpdateFields = {
    roundId: "round_bench",
    deviceId: "dev_bench0001",
    nonce: crypto.getRandomValues(new Uint8Array(16)),
    shape: [LENGTH],
    payload: { dtype: "float32", values },
  };
  const centralDevice: number[] = [];
  let upload = await encodeUpdate(fields, key.secretKey);
  for (let i = 0; i < 30; i++) {
    const start = cpuMs();
    upload = await encodeUpdate(fields, key.secretKey);
    if (i >= 5) centralDevice.push(cpuMs() - start);
  }
  const centralDeviceMs = median(centralDevice);

  const out: BenchMeasure[] = [];
  for (const n of [100, 300]) {
    const p = chooseParameters(n, BITS, LENGTH);
    const drops = new Map<number, DropPoint>();
    for (let i = 0; drops.size < Math.floor(n / 3); i += 3) drops.set(i % n, "consistency");
    console.log(`  secagg n = ${n}: k = ${p.neighbours}, t = ${p.threshold}, ${drops.size} drop after masking`);
    const round = await simulateRound({ devices: n, bits: BITS, length: LENGTH, drops });
    const sum = await round.finish();
    if (!sum.every((v, i) => v === round.expectedSum[i])) throw new Error("secagg bench: the sum is wrong");
    const stayed = round.deviceIds.map((_, i) => i).filter((i) => !drops.has(i));
    const deviceMs = median(stayed.map((i) => round.deviceCpuMs[i]!));
    const deviceWallMs = median(stayed.map((i) => round.deviceMs[i]!));
    const deviceBytes = median(stayed.map((i) => round.sentBytes[i]! + round.receivedBytes[i]!));

    const attribution = await attributeSecAgg(n, LENGTH, BITS);
    console.log(attributionTable(attribution));
    const javascript = attribution.rows
      .filter((r) => r.kind === "javascript")
      .map((r) => `${r.primitive} ${(r.microseconds * r.perNeighbour).toFixed(1)} µs`)
      .join("; ");
    const webcrypto = attribution.rows
      .filter((r) => r.kind === "webcrypto")
      .map((r) => `${r.primitive} ${r.microseconds.toFixed(1)} µs × ${r.perNeighbour.toFixed(2)}`)
      .join("; ");

    const centralEdgeStart = cpuMs();
    for (let i = 0; i < n; i++) await verifyUpdateSignature(decodeUpdate(upload), key.publicKey);
    const centralEdgeMs = cpuMs() - centralEdgeStart;

    const notes = `n = ${n}, k = ${p.neighbours}, t = ${p.threshold}, d' = ${LENGTH}, b = ${BITS}, ${drops.size} devices drop after masking; one process, WebCrypto X25519, AES-CTR and Ed25519`;
    out.push(
      measure({
        name: `secagg-device-ms-n${n}`,
        description: `device CPU time of one secure-aggregation round, ${n} devices (median surviving device)`,
        value: deviceMs,
        unit: "ms CPU",
        baseline_name: "central mode: encodeUpdate (SHA-256 digest + Ed25519 sign) of the same d' float32 values",
        baseline: centralDeviceMs,
        better: "lower",
        notes: `${notes}; CPU time of the process (every thread); wall ${deviceWallMs.toFixed(1)} ms on this shared machine`,
      }),
      measure({
        name: `secagg-device-bytes-n${n}`,
        description: `bytes a device sends and receives in one secure-aggregation round, ${n} devices (median)`,
        value: deviceBytes,
        unit: "bytes",
        baseline_name: "central mode: the signed float32 upload of the same d' values",
        baseline: upload.length,
        better: "lower",
        notes,
      }),
      measure({
        name: `secagg-device-us-per-neighbour-n${n}`,
        description: `device CPU time of one secure-aggregation round per graph neighbour, ${n} devices (median surviving device)`,
        value: (deviceMs * 1000) / p.neighbours,
        unit: "µs CPU",
        baseline_name: "the floor of its native WebCrypto calls per neighbour (X25519, Ed25519 verify, AES-CTR mask)",
        baseline: attribution.webCryptoFloorUs,
        better: "lower",
        notes: `${notes}; WebCrypto per call: ${webcrypto}; JavaScript per neighbour: ${javascript}`,
      }),
      measure({
        name: `secagg-edge-ms-n${n}`,
        description: `edge CPU time of one secure-aggregation round, ${n} devices, unmasking included`,
        value: round.serverCpuMs,
        unit: "ms CPU",
        baseline_name: `central mode: decode + WebCrypto Ed25519 verify of ${n} uploads`,
        baseline: centralEdgeMs,
        better: "lower",
        notes: `${notes}; CPU time of the process (every thread); wall ${round.serverMs.toFixed(0)} ms on this shared machine`,
      }),
    );
  }
  return out;
}

/** CPU milliseconds of this process so far, all threads. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
