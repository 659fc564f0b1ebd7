/**
 * @module
 * A device's cost in a distributed round (issue #20: "device overhead ≤ 2× central"):
 * - the whole round, the measure the goal is about, at 100 and 300 devices a round: one local epoch on a device's
 *   shard of MNIST (600 real digits, softmax 784→10, d = 7,850), the distributed encoder (clip, randomized Hadamard
 *   rotation, conditional rounding, exact discrete Gaussian share, mod 2^20; `@fedge/ml`
 *   `encodeDistributedDeviceUpdate`) and every SecAgg+ step the device runs (`@fedge/secagg`'s client on d' = 8,192,
 *   a third of the roster dropping after masking), against the same device's central round: the same epoch, clip,
 *   int8 stochastic rounding and codec-v3 encode + Ed25519 sign (what `participate()` does in central mode);
 * - the epoch + encoder alone against the epoch + clip (the encoder's share), the noise share alone, and the bytes.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import nacl from "tweetnacl";
import {
  compressUpdate,
  encodeDistributedDeviceUpdate,
  initMlp,
  privatizeUpdate,
  trainDeviceDelta,
  xoshiroRandomBytes,
  type DistributedDeviceTask,
} from "@fedge/ml";
import { encodeUpdate } from "@fedge/protocol";
import { addModulo, cryptoRandomBytes, fillDiscreteGaussian, planDistributedDiscreteGaussian } from "@fedge/privacy";
import { chooseParameters } from "@fedge/secagg";
import { simulateRound, type DropPoint } from "@fedge/secagg/testing";
import { measure, type BenchMeasure } from "../types.ts";

const PIXELS = 784;

function loadShard(perDigit: number): { x: Float32Array; y: Uint8Array } {
  const dir = join(dirname(createRequire(import.meta.url).resolve("mnist/package.json")), "src", "digits");
  const x = new Float32Array(perDigit * 10 * PIXELS);
  const y = new Uint8Array(perDigit * 10);
  for (let d = 0; d < 10; d++) {
    const { data } = JSON.parse(readFileSync(join(dir, `${d}.json`), "utf8")) as { data: number[] };
    for (let i = 0; i < perDigit; i++) {
      x.set(data.slice(i * PIXELS, (i + 1) * PIXELS), (i * 10 + d) * PIXELS);
      y[i * 10 + d] = d;
    }
  }
  return { x, y };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median CPU milliseconds of `fn` (CPU, not wall: on a shared machine wall time mostly measures the other tenants). */
function time(fn: () => void, reps: number): number {
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const s = cpuMs();
    fn();
    t.push(cpuMs() - s);
  }
  return median(t);
}

export default async function run(): Promise<BenchMeasure[]> {
  const { x, y } = loadShard(60); // 600 digits: one device's shard
  const params = initMlp([784, 10], { random: xoshiroRandomBytes(1) });
  const train = { local_epochs: 1, batch_size: 32, learning_rate: 0.1, trainable: "all" as const };
  const plan = planDistributedDiscreteGaussian({
    bits: 20,
    length: 7850,
    clipNorm: 1,
    noiseMultiplier: 1,
    expectedClients: 100,
    minClients: 80,
  });
  const task: DistributedDeviceTask = {
    privacy_mode: "distributed",
    clip_norm: 1,
    distributed: {
      bits: plan.bits,
      scale: plan.scale,
      dimension: plan.paddedLength,
      share_variance: plan.localVariance,
      sensitivity_bound: plan.sensitivityBound,
      rotation_seed: Buffer.from(new Uint8Array(32).fill(9)).toString("base64url"),
    },
  };
  const delta = () =>
    trainDeviceDelta({ params, task: train, data: x, labels: y, random: xoshiroRandomBytes(2) }).values;
  // warm-up (JIT) of both device steps
  for (let i = 0; i < 3; i++) {
    privatizeUpdate(delta(), { privacy_mode: "central", clip_norm: 1 }, xoshiroRandomBytes(3));
    encodeDistributedDeviceUpdate(delta(), task);
  }
  const centralMs = time(
    () => privatizeUpdate(delta(), { privacy_mode: "central", clip_norm: 1 }, xoshiroRandomBytes(3)),
    7,
  );
  const distributedMs = time(() => encodeDistributedDeviceUpdate(delta(), task), 7);
  const d = delta();
  const trainMs = time(() => delta(), 7);
  const encodeMs = time(() => encodeDistributedDeviceUpdate(d, task), 7);
  const noise = new Float64Array(plan.paddedLength);
  const noiseMs = time(() => fillDiscreteGaussian(noise, plan.localVariance), 7);
  const whole = [];
  for (const n of [100, 300]) whole.push(...(await wholeRound(n, { params, train, x, y })));
  return [
    ...whole,
    measure({
      name: "device-round-distributed",
      description:
        "a device's epoch + distributed encoder (no secure aggregation; the whole round is device-round-secagg-*)",
      value: distributedMs,
      unit: "ms CPU",
      baseline_name: "the same epoch + central mode's device step (clip)",
      baseline: centralMs,
      better: "lower",
      goalRatio: 2,
      notes: `CPU time, medians of 7 runs each after 3 warm-up pairs; training alone ${trainMs.toFixed(1)} ms, the encoder alone ${encodeMs.toFixed(1)} ms, of which the exact discrete Gaussian share (${plan.paddedLength} coordinates, σ_l² = ${plan.localVariance}) ${noiseMs.toFixed(1)} ms`,
    }),
    measure({
      name: "device-bytes-distributed",
      description: "bytes of a device's input per round: d' = 8,192 residues mod 2^20 sent as uint32",
      value: 4 * plan.paddedLength,
      unit: "B",
      baseline_name: "central mode's float32 update of d = 7,850 values",
      baseline: 4 * 7850,
      better: "lower",
      goalRatio: 2,
      notes: "before secure aggregation's own overhead (keys, shares, masks); packing b = 20 bits would send 0.66×",
    }),
  ];
}

interface Training {
  params: ReturnType<typeof initMlp>;
  train: { local_epochs: number; batch_size: number; learning_rate: number; trainable: "all" };
  x: Float32Array;
  y: Uint8Array;
}

/**
 * The whole device round at `n` devices, both modes, device by device: each device's central round (epoch, clip,
 * int8, encode + sign) and its distributed epoch + encoder are timed back to back, so both see the same machine load;
 * then one SecAgg+ round of all n encodings (a third dropping after masking) adds each device's protocol steps.
 */
async function wholeRound(n: number, t: Training): Promise<BenchMeasure[]> {
  const dropped = Math.floor(n / 3);
  const plan = planDistributedDiscreteGaussian({
    bits: 20,
    length: 7850,
    clipNorm: 1,
    noiseMultiplier: 1,
    expectedClients: n,
    minClients: n - dropped,
  });
  const task: DistributedDeviceTask = {
    privacy_mode: "distributed",
    clip_norm: 1,
    distributed: {
      bits: plan.bits,
      scale: plan.scale,
      dimension: plan.paddedLength,
      share_variance: plan.localVariance,
      sensitivity_bound: plan.sensitivityBound,
      rotation_seed: Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url"),
    },
  };
  const central = { privacy_mode: "central" as const, clip_norm: 1, update_dtype: "int8" as const };
  const key = nacl.sign.keyPair();
  const delta = (i: number) =>
    trainDeviceDelta({ ...t, task: t.train, data: t.x, labels: t.y, random: xoshiroRandomBytes(1000 + i) }).values;
  const centralRound = async (i: number) => {
    const values = delta(i);
    privatizeUpdate(values, central, cryptoRandomBytes); // clips in place
    const payload = compressUpdate(values, central, cryptoRandomBytes);
    const nonce = crypto.getRandomValues(new Uint8Array(16));
    const fields = { roundId: "round_bench", deviceId: "dev_bench0001", nonce, shape: [values.length], payload };
    return encodeUpdate(fields, key.secretKey);
  };
  for (let i = 0; i < 3; i++) {
    await centralRound(i);
    encodeDistributedDeviceUpdate(delta(i), task); // warm-up (JIT)
  }
  const centralMs: number[] = [];
  const localMs: number[] = [];
  const centralCpu: number[] = [];
  const localCpu: number[] = [];
  const inputs: Uint32Array[] = [];
  let uploadBytes = 0;
  for (let i = 0; i < n; i++) {
    let start = performance.now();
    let cpu = cpuMs();
    uploadBytes = (await centralRound(i)).length;
    centralMs.push(performance.now() - start);
    centralCpu.push(cpuMs() - cpu);
    start = performance.now();
    cpu = cpuMs();
    inputs.push(encodeDistributedDeviceUpdate(delta(i), task).encoded);
    localMs.push(performance.now() - start);
    localCpu.push(cpuMs() - cpu);
  }
  const drops = new Map<number, DropPoint>();
  for (let i = 0; drops.size < dropped; i += 3) drops.set(i % n, "consistency");
  const p = chooseParameters(n, plan.bits, plan.paddedLength);
  console.log(`  whole device round n = ${n}: k = ${p.neighbours}, t = ${p.threshold}, ${dropped} drop after masking`);
  const round = await simulateRound({ devices: n, bits: plan.bits, length: plan.paddedLength, inputs, drops });
  const sum = await round.finish();
  const expected = new Uint32Array(plan.paddedLength);
  for (const i of round.maskedInputs.keys()) addModulo(expected, inputs[i]!, plan.bits);
  if (!sum.every((v, j) => v === expected[j])) throw new Error("distributed-device bench: the secure sum is wrong");
  const stayed = inputs.map((_, i) => i).filter((i) => !drops.has(i));
  const wholeMs = stayed.map((i) => localMs[i]! + round.deviceMs[i]!);
  const wholeCpu = stayed.map((i) => localCpu[i]! + round.deviceCpuMs[i]!);
  const bytes = stayed.map((i) => round.sentBytes[i]! + round.receivedBytes[i]!);
  // What the goal needs: SecAgg+ costs about the same per graph neighbour at any n, so 2× holds for k up to
  // (2·central − epoch and encoder) / (SecAgg+ per neighbour).
  const secAggMs = median(stayed.map((i) => round.deviceCpuMs[i]!));
  const perNeighbourUs = (secAggMs * 1000) / p.neighbours;
  const largestK = Math.floor(((2 * median(centralCpu) - median(localCpu)) * 1000) / perNeighbourUs);
  const notes =
    `CPU time of the process (every thread: WebCrypto runs on a pool), medians over the ${stayed.length} devices ` +
    `that stay (central: over all ${n}); k = ${p.neighbours}, t = ${p.threshold}, d' = ${plan.paddedLength}, ` +
    `b = ${plan.bits}. Distributed: epoch + encoder ${median(localCpu).toFixed(1)} ms, SecAgg+ steps ` +
    `${secAggMs.toFixed(1)} ms (WebCrypto X25519, AES-CTR, Ed25519), ${perNeighbourUs.toFixed(0)} µs per neighbour: ` +
    `2× central would hold up to k = ${largestK} neighbours. ` +
    `Wall time on this shared machine: ${median(wholeMs).toFixed(1)} ms against ${median(centralMs).toFixed(1)} ms`;
  return [
    measure({
      name: `device-round-secagg-ms-n${n}`,
      description: `a device's whole distributed round with SecAgg+, ${n} devices: epoch + encoder + every SecAgg+ step`,
      value: median(wholeCpu),
      unit: "ms CPU",
      baseline_name: "the same device's central round: the same epoch + clip + int8 + codec-v3 encode and Ed25519 sign",
      baseline: median(centralCpu),
      better: "lower",
      goalRatio: 2,
      notes,
    }),
    measure({
      name: `device-round-secagg-bytes-n${n}`,
      description: `bytes a device sends and receives in a distributed round with SecAgg+, ${n} devices (median)`,
      value: median(bytes),
      unit: "B",
      baseline_name: "central mode's signed int8 upload of the same update",
      baseline: uploadBytes,
      better: "lower",
      notes:
        "JSON bodies of the SecAgg+ messages (roster, envelopes, packed masked input, signatures), no HTTP framing",
    }),
  ];
}

/** CPU milliseconds of this process so far, all threads. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
