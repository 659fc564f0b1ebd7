/**
 * @module
 * TEST AND BENCH ONLY: one secure-aggregation round run in process, the real client and server state machines passing
 * real messages (JSON, parsed with the protocol's zod schemas as the edge would), with devices that drop at a chosen
 * stage. It measures what each device sends and receives and how long its own steps take. Import it as
 * `@fedge/secagg/testing`; it is not part of the package root and is not published.
 */
import nacl from "tweetnacl";
import {
  SecAggAdvertiseKeys,
  SecAggConsistencyCheck,
  SecAggConsistencyRequest,
  SecAggMaskedInput,
  SecAggRoster,
  SecAggShareKeys,
  SecAggShareRelay,
  SecAggUnmaskRequest,
  SecAggUnmaskShares,
} from "@fedge/protocol";
import { SecAggClient, type DeviceIdentity } from "./client.ts";
import { modulusMask } from "./modular.ts";
import type { ChooseParametersOptions } from "./parameters.ts";
import { VerifiedRoster } from "./roster.ts";
import { SecAggServer } from "./server.ts";

/** The stage before which a device goes silent. */
export type DropPoint = "share-keys" | "masked-input" | "consistency" | "unmask";

export interface SimulatedRoundOptions extends ChooseParametersOptions {
  devices: number;
  bits: number;
  length: number;
  roundId?: string;
  /** Device index → the stage it never answers. */
  drops?: ReadonlyMap<number, DropPoint>;
  /** Drops chosen once the roster (and so the graph) is known; added to `drops`. */
  dropsFor?: (roster: VerifiedRoster) => ReadonlyMap<number, DropPoint>;
  /** The inputs; random in Z_{2^b} when absent. */
  inputs?: Uint32Array[];
}

export interface SimulatedRound {
  server: SecAggServer;
  /** Device ids by index (sorted, so index = roster position). */
  deviceIds: string[];
  inputs: Uint32Array[];
  /** Σ x_u mod 2^b over the devices that sent a masked input, computed in the clear. */
  expectedSum: Uint32Array;
  /** The masked inputs the edge received, by device index. */
  maskedInputs: Map<number, SecAggMaskedInput>;
  /** Per device index: bytes sent and received (JSON bodies), milliseconds in its own client steps. */
  sentBytes: number[];
  receivedBytes: number[];
  deviceMs: number[];
  /**
   * Per device index: CPU milliseconds of this process (every thread: WebCrypto works on a pool) during its own
   * client steps, which run one at a time; NaN where the runtime cannot tell (no `process.cpuUsage`).
   */
  deviceCpuMs: number[];
  /** Milliseconds in the server's own steps. */
  serverMs: number;
  /** CPU milliseconds of this process in the server's own steps (NaN outside Node). */
  serverCpuMs: number;
}

export interface SimulatedIdentity extends DeviceIdentity {
  secretKey: Uint8Array;
}

/** PKCS #8 of an Ed25519 key (RFC 8410 §7) up to its 32-byte seed. */
const PKCS8_ED25519_PREFIX = Uint8Array.of(
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
  0x70,
  0x04,
  0x22,
  0x04,
  0x20,
);

/**
 * A device identity that signs as the SDK does: WebCrypto Ed25519 where the runtime has it (the key imported once),
 * tweetnacl otherwise.
 */
export function simulatedIdentity(deviceId: string): SimulatedIdentity {
  const pair = nacl.sign.keyPair();
  let key: Promise<CryptoKey | null> | undefined;
  return {
    deviceId,
    publicKey: pair.publicKey,
    secretKey: pair.secretKey,
    sign: async (m) => {
      key ??= crypto.subtle
        .importKey("pkcs8", concat(PKCS8_ED25519_PREFIX, pair.secretKey.subarray(0, 32)), "Ed25519", false, ["sign"])
        .catch(() => null);
      const native = await key;
      if (!native) return nacl.sign.detached(m, pair.secretKey);
      return new Uint8Array(await crypto.subtle.sign("Ed25519", native, m as Uint8Array<ArrayBuffer>));
    },
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Runs the stages up to the server's `finish`, which the caller awaits (it may abort). */
export async function simulateRound(
  options: SimulatedRoundOptions,
): Promise<SimulatedRound & { finish: () => Promise<Uint32Array> }> {
  const roundId = options.roundId ?? "secagg-test_1";
  const n = options.devices;
  const drops = new Map<number, DropPoint>(options.drops ?? []);
  const mask = modulusMask(options.bits);
  const deviceIds = Array.from({ length: n }, (_, i) => `dev_${String(i).padStart(8, "0")}`);
  const identities = deviceIds.map(simulatedIdentity);
  const inputs =
    options.inputs ??
    deviceIds.map(() => {
      const x = new Uint32Array(options.length);
      for (let i = 0; i < x.length; i += 16384) crypto.getRandomValues(x.subarray(i, i + 16384));
      return x.map((v) => v & mask);
    });
  const sentBytes = new Array<number>(n).fill(0);
  const receivedBytes = new Array<number>(n).fill(0);
  const deviceMs = new Array<number>(n).fill(0);
  const deviceCpuMs = new Array<number>(n).fill(0);
  let serverMs = 0;
  let serverCpuMs = 0;
  const server = new SecAggServer({
    ...options,
    roundId,
    identityKeyOf: (id) => identities[deviceIds.indexOf(id)]?.publicKey,
  });
  const clients = identities.map((identity) => new SecAggClient({ roundId, identity }));
  const alive = (i: number, stage: DropPoint): boolean => {
    const order: DropPoint[] = ["share-keys", "masked-input", "consistency", "unmask"];
    const d = drops.get(i);
    return d === undefined || order.indexOf(d) > order.indexOf(stage);
  };
  /** A JSON hop: counted, then parsed with the wire schema as the receiver would. */
  const wire = <T>(schema: { parse(v: unknown): T }, value: unknown, from: number | null, to: number | null): T => {
    const body = JSON.stringify(value);
    if (from !== null) sentBytes[from]! += body.length;
    if (to !== null) receivedBytes[to]! += body.length;
    return schema.parse(JSON.parse(body));
  };
  const onDevice = async <T>(i: number, step: () => T | Promise<T>): Promise<T> => {
    const start = performance.now();
    const cpu = cpuMs();
    const out = await step();
    deviceMs[i]! += performance.now() - start;
    deviceCpuMs[i]! += cpuMs() - cpu;
    return out;
  };
  const onServer = async <T>(step: () => T | Promise<T>): Promise<T> => {
    const start = performance.now();
    const cpu = cpuMs();
    const out = await step();
    serverMs += performance.now() - start;
    serverCpuMs += cpuMs() - cpu;
    return out;
  };

  for (const [i, c] of clients.entries()) {
    const msg = wire(SecAggAdvertiseKeys, await onDevice(i, () => c.advertiseKeys()), i, null);
    await onServer(() => server.receiveAdvertise(msg));
  }
  const roster = await onServer(() => server.closeAdvertise());
  for (const [i, at] of options.dropsFor?.(new VerifiedRoster(roundId, roster)) ?? []) drops.set(i, at);
  for (const [i, c] of clients.entries()) {
    if (!alive(i, "share-keys")) continue;
    const r = wire(SecAggRoster, roster, null, i);
    const msg = wire(SecAggShareKeys, await onDevice(i, () => c.shareKeys(r)), i, null);
    await onServer(() => server.receiveShareKeys(msg));
  }
  await onServer(() => server.closeShareKeys());
  const maskedInputs = new Map<number, SecAggMaskedInput>();
  for (const [i, c] of clients.entries()) {
    if (!alive(i, "share-keys")) continue;
    const relay = wire(SecAggShareRelay, await onServer(() => server.relayFor(deviceIds[i]!)), null, i);
    if (!alive(i, "masked-input")) continue;
    const msg = wire(SecAggMaskedInput, await onDevice(i, () => c.maskInput(relay, inputs[i]!)), i, null);
    await onServer(() => server.receiveMaskedInput(msg));
    maskedInputs.set(i, msg);
  }
  const consistency = await onServer(() => server.closeMaskedInput());
  for (const [i, c] of clients.entries()) {
    if (!maskedInputs.has(i)) continue;
    const req = wire(SecAggConsistencyRequest, consistency, null, i);
    if (!alive(i, "consistency")) continue;
    const msg = wire(SecAggConsistencyCheck, await onDevice(i, () => c.checkConsistency(req)), i, null);
    await onServer(() => server.receiveConsistency(msg));
  }
  await onServer(() => server.closeConsistency());
  for (const [i, c] of clients.entries()) {
    if (!maskedInputs.has(i) || !alive(i, "consistency")) continue;
    const req = wire(SecAggUnmaskRequest, await onServer(() => server.unmaskRequestFor(deviceIds[i]!)), null, i);
    if (!alive(i, "unmask")) continue;
    const msg = wire(SecAggUnmaskShares, await onDevice(i, () => c.unmask(req)), i, null);
    await onServer(() => server.receiveUnmask(msg));
  }
  const expectedSum = new Uint32Array(options.length);
  for (const i of maskedInputs.keys()) {
    for (let j = 0; j < expectedSum.length; j++) expectedSum[j] = (expectedSum[j]! + inputs[i]![j]!) & mask;
  }
  const result: SimulatedRound & { finish: () => Promise<Uint32Array> } = {
    server,
    deviceIds,
    inputs,
    expectedSum,
    maskedInputs,
    sentBytes,
    receivedBytes,
    deviceMs,
    deviceCpuMs,
    serverMs,
    serverCpuMs,
    finish: async () => {
      const start = performance.now();
      const cpu = cpuMs();
      const sum = await server.finish();
      result.serverMs += performance.now() - start;
      result.serverCpuMs += cpuMs() - cpu;
      return sum;
    },
  };
  return result;
}

/** CPU milliseconds of this process so far (all threads), or NaN outside Node. */
function cpuMs(): number {
  const usage = (
    globalThis as { process?: { cpuUsage?: () => { user: number; system: number } } }
  ).process?.cpuUsage?.();
  return usage ? (usage.user + usage.system) / 1000 : Number.NaN;
}
