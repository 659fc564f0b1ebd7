/**
 * @module
 * A verified roster as both sides use it: devices by position (sorted ids; position + 1 is the share point), their keys
 * as bytes, the parameters, and the graph. Building one checks the shape and parameters; `verifyAdvertised` the
 * signatures.
 */
import { fromBase64Url, type SecAggRoster } from "@fedge/protocol";
import { verifyEd25519 } from "./ed25519.ts";
import { SecAggError } from "./errors.ts";
import { NeighbourGraph } from "./graph.ts";
import { modulusMask } from "./modular.ts";
import type { SecAggParameters } from "./parameters.ts";
import { advertiseBytes, graphSeed } from "./transcript.ts";

export interface RosterDevice {
  readonly deviceId: string;
  readonly identityKey: Uint8Array;
  readonly encryptionKey: Uint8Array;
  readonly maskingKey: Uint8Array;
  readonly signature: Uint8Array;
}

/**
 * A roster entry whose keys are decoded on first use: a device needs every signature (for the graph seed) but the keys
 * of its k neighbours only, so at n = 300 it skips ≈ 400 of the ≈ 900 base64url decodes.
 */
class LazyRosterDevice implements RosterDevice {
  readonly deviceId: string;
  readonly signature: Uint8Array;
  readonly #wire: SecAggRoster["devices"][number];
  #identityKey: Uint8Array | undefined;
  #encryptionKey: Uint8Array | undefined;
  #maskingKey: Uint8Array | undefined;

  constructor(wire: SecAggRoster["devices"][number]) {
    this.deviceId = wire.device_id;
    this.signature = fromBase64Url(wire.signature);
    this.#wire = wire;
  }

  get identityKey(): Uint8Array {
    return (this.#identityKey ??= fromBase64Url(this.#wire.identity_key));
  }

  get encryptionKey(): Uint8Array {
    return (this.#encryptionKey ??= fromBase64Url(this.#wire.encryption_key));
  }

  get maskingKey(): Uint8Array {
    return (this.#maskingKey ??= fromBase64Url(this.#wire.masking_key));
  }
}

export class VerifiedRoster {
  readonly devices: readonly RosterDevice[];
  readonly parameters: SecAggParameters;
  readonly graph: NeighbourGraph;
  readonly #positions = new Map<string, number>();

  /** Checks ids (sorted, distinct), signatures and parameters; throws `SecAggError` on the first problem. */
  readonly roundId: string;

  constructor(roundId: string, roster: SecAggRoster) {
    this.roundId = roundId;
    if (roster.round_id !== roundId) throw new SecAggError("bad-message", "the roster is for another round");
    const p = roster.parameters;
    const n = roster.devices.length;
    if (p.devices !== n) throw new SecAggError("bad-message", `the roster lists ${n} devices but says ${p.devices}`);
    const complete = p.neighbours === n - 1;
    if (!complete && (p.neighbours % 2 !== 0 || p.neighbours > n - 1)) {
      throw new SecAggError("bad-message", `k = ${p.neighbours} is neither an even degree below n − 1 nor n − 1`);
    }
    // t > k/2 keeps the two shares of a device apart (see parameters.ts); t ≤ k lets it be recovered at all.
    if (!(2 * p.threshold > p.neighbours && p.threshold <= p.neighbours)) {
      throw new SecAggError("bad-message", `threshold ${p.threshold} is not in (k/2, k] for k = ${p.neighbours}`);
    }
    if (!(2 * p.min_survivors > n && p.min_survivors <= n)) {
      throw new SecAggError("bad-message", `min_survivors ${p.min_survivors} must be a majority of ${n}`);
    }
    try {
      modulusMask(p.bits);
    } catch {
      throw new SecAggError("bad-message", `bits ${p.bits} outside [1, 32]`);
    }
    this.parameters = {
      devices: n,
      neighbours: p.neighbours,
      threshold: p.threshold,
      minSurvivors: p.min_survivors,
      bits: p.bits,
      length: p.length,
    };
    const devices: RosterDevice[] = [];
    for (const [i, d] of roster.devices.entries()) {
      if (i > 0 && !(roster.devices[i - 1]!.device_id < d.device_id)) {
        throw new SecAggError("bad-message", "roster devices must be sorted by id, each once");
      }
      const entry = new LazyRosterDevice(d);
      devices.push(entry);
      this.#positions.set(entry.deviceId, i);
    }
    this.devices = devices;
    this.graph = new NeighbourGraph(
      n,
      p.neighbours,
      graphSeed(
        roundId,
        devices.map((d) => d.signature),
      ),
    );
  }

  /**
   * Checks the identity signatures over the advertised keys of `positions`. A device checks only its neighbours (and
   * itself): those are the only keys it encrypts to or agrees masks with.
   */
  async verifyAdvertised(positions: readonly number[]): Promise<void> {
    const verified = await Promise.all(
      positions.map((u) => {
        const d = this.devices[u]!;
        return verifyEd25519(
          advertiseBytes(this.roundId, d.deviceId, d.encryptionKey, d.maskingKey),
          d.signature,
          d.identityKey,
        );
      }),
    );
    const forged = verified.indexOf(false);
    if (forged >= 0) {
      const d = this.devices[positions[forged]!]!;
      throw new SecAggError("bad-signature", `the advertised keys of ${d.deviceId} are not signed by it`);
    }
  }

  /** The position of `deviceId`, or a `SecAggError("bad-message")` when it is not in the roster. */
  positionOf(deviceId: string): number {
    const i = this.#positions.get(deviceId);
    if (i === undefined) throw new SecAggError("bad-message", `${deviceId} is not in the round's roster`);
    return i;
  }

  has(deviceId: string): boolean {
    return this.#positions.has(deviceId);
  }

  /** The Shamir evaluation point of a device. */
  sharePoint(position: number): number {
    return position + 1;
  }
}

/** Parses a list of device ids into roster positions: each known, each once, ascending by id. */
export function positionsOf(roster: VerifiedRoster, ids: readonly string[], what: string): number[] {
  const out: number[] = [];
  for (const [i, id] of ids.entries()) {
    if (i > 0 && !(ids[i - 1]! < id)) throw new SecAggError("bad-message", `${what} must be sorted ids, each once`);
    out.push(roster.positionOf(id));
  }
  return out;
}
