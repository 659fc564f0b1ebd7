/**
 * @module
 * The edge's side of SecAgg+ (Bell et al. CCS 2020, Algorithm 3, with the consistency check of Bonawitz et al. CCS 2017
 * §4.2) as a pure state machine. Each `receive…` takes one device message and either records it or throws
 * `SecAggError` and records nothing; each `close…` ends a stage, checks that enough devices remain (else the round is
 * aborted for good) and returns what the devices need next. The server only ever holds the running sum of masked
 * inputs, relayed ciphertexts it cannot open, and — at the end — one kind of secret per device; `finish` returns
 * Σ x_u mod 2^b over the devices whose masked input arrived.
 */
import {
  fromBase64Url,
  toBase64Url,
  type SecAggAdvertiseKeys,
  type SecAggConsistencyCheck,
  type SecAggConsistencyRequest,
  type SecAggMaskedInput,
  type SecAggRoster,
  type SecAggShareKeys,
  type SecAggShareRelay,
  type SecAggUnmaskRequest,
  type SecAggUnmaskShares,
} from "@fedge/protocol";
import { sameBytes } from "./bytes.ts";
import { verifyEd25519 } from "./ed25519.ts";
import { SecAggError, type SecAggFailure } from "./errors.ts";
import { pairwiseSeeds, x25519PublicKey } from "./key-agreement.ts";
import { addModInto, subModInto } from "./modular.ts";
import { chooseParameters, type ChooseParametersOptions } from "./parameters.ts";
import { expandMask } from "./prg.ts";
import { VerifiedRoster } from "./roster.ts";
import { checkShareFormat, combineShares, type Share } from "./shamir.ts";
import { advertiseBytes, consistencyBytes } from "./transcript.ts";
import { decodePackedVector } from "./vector-codec.ts";

export interface SecAggServerOptions extends ChooseParametersOptions {
  roundId: string;
  /** b: the inputs live in Z_{2^b}. */
  bits: number;
  /** d': values per input. */
  length: number;
  /** The registered Ed25519 identity key of a device, or undefined for an unknown device. */
  identityKeyOf(deviceId: string): Uint8Array | undefined;
  /**
   * The fewest inputs a sum may be released of: a distributed round's charged noise shares (`noise_shares`), since
   * each input carries one share of the discrete Gaussian (Kairouz, Liu, Steinke 2021). The roster's `min_survivors`
   * is raised to it, so every stage, the server's and each device's, aborts below it. @default 1
   */
  minInputs?: number;
}

export type SecAggServerStage =
  "advertise" | "share-keys" | "masked-input" | "consistency" | "unmask" | "finished" | "aborted";

export class SecAggServer {
  readonly roundId: string;
  readonly #options: SecAggServerOptions;
  #stage: SecAggServerStage = "advertise";
  #abortReason: string | undefined;
  readonly #advertised = new Map<string, SecAggAdvertiseKeys & { identity_key: string }>();
  #roster: VerifiedRoster | undefined;
  /** U2: positions that shared, with their envelopes by receiver position. */
  readonly #shared = new Map<number, Map<number, string>>();
  /** U3 and Σ y_u over it. */
  readonly #masked = new Set<number>();
  #sum: Uint32Array | undefined;
  #survivors: string[] = [];
  /** U4: consistency signatures by position. */
  readonly #signatures = new Map<number, string>();
  /** Shares received in the unmask stage: of whom → [(point, value)]. */
  readonly #selfMaskShares = new Map<number, Share[]>();
  readonly #keyShares = new Map<number, Share[]>();
  readonly #unmasked = new Set<number>();

  constructor(options: SecAggServerOptions) {
    this.roundId = options.roundId;
    this.#options = options;
  }

  get stage(): SecAggServerStage {
    return this.#stage;
  }

  /** Why the round aborted, when it did. */
  get abortReason(): string | undefined {
    return this.#abortReason;
  }

  async receiveAdvertise(message: SecAggAdvertiseKeys): Promise<void> {
    this.#expect("advertise", message.round_id);
    if (this.#advertised.has(message.device_id)) {
      throw new SecAggError("replayed", `${message.device_id} already advertised keys`);
    }
    const identity = this.#options.identityKeyOf(message.device_id);
    if (!identity) throw new SecAggError("bad-message", `${message.device_id} is not a registered device`);
    const signed = advertiseBytes(
      this.roundId,
      message.device_id,
      fromBase64Url(message.encryption_key),
      fromBase64Url(message.masking_key),
    );
    if (!(await verifyEd25519(signed, fromBase64Url(message.signature), identity))) {
      throw new SecAggError("bad-signature", `the advertised keys of ${message.device_id} are not signed by it`);
    }
    this.#expect("advertise", message.round_id);
    if (this.#advertised.has(message.device_id)) {
      throw new SecAggError("replayed", `${message.device_id} already advertised keys`);
    }
    this.#advertised.set(message.device_id, { ...message, identity_key: toBase64Url(identity) });
  }

  /** Ends stage 0: the roster and parameters for the devices that advertised. */
  closeAdvertise(): SecAggRoster {
    this.#expect("advertise", this.roundId);
    const ids = [...this.#advertised.keys()].sort();
    if (ids.length < 3) this.#abort(`${ids.length} devices advertised keys; secure aggregation needs at least 3`);
    const minInputs = this.#options.minInputs ?? 1;
    if (ids.length < minInputs) {
      this.#abort(`${ids.length} devices advertised keys, fewer than the ${minInputs} noise shares a sum must hold`);
    }
    let p;
    try {
      p = chooseParameters(ids.length, this.#options.bits, this.#options.length, this.#options);
    } catch (e) {
      this.#abort((e as Error).message);
    }
    const roster: SecAggRoster = {
      round_id: this.roundId,
      parameters: {
        devices: p.devices,
        neighbours: p.neighbours,
        threshold: p.threshold,
        min_survivors: Math.max(p.minSurvivors, minInputs),
        bits: p.bits,
        length: p.length,
      },
      devices: ids.map((id) => {
        const a = this.#advertised.get(id)!;
        return {
          device_id: id,
          identity_key: a.identity_key,
          encryption_key: a.encryption_key,
          masking_key: a.masking_key,
          signature: a.signature,
        };
      }),
    };
    this.#roster = new VerifiedRoster(this.roundId, roster);
    this.#advertised.clear();
    this.#stage = "share-keys";
    return roster;
  }

  receiveShareKeys(message: SecAggShareKeys): void {
    this.#expect("share-keys", message.round_id);
    const roster = this.#roster!;
    const u = roster.positionOf(message.device_id);
    if (this.#shared.has(u)) throw new SecAggError("replayed", `${message.device_id} already shared keys`);
    const neighbours = roster.graph.neighboursOf(u);
    const byReceiver = new Map<number, string>();
    for (const { to, ciphertext } of message.shares) {
      const v = roster.positionOf(to);
      if (!neighbours.includes(v)) throw new SecAggError("bad-message", `${to} is not a neighbour of the sender`);
      if (byReceiver.has(v)) throw new SecAggError("bad-message", `two envelopes for ${to}`);
      byReceiver.set(v, ciphertext);
    }
    if (byReceiver.size !== neighbours.length) {
      throw new SecAggError("bad-message", `expected one envelope for each of ${neighbours.length} neighbours`);
    }
    this.#shared.set(u, byReceiver);
  }

  /** Ends stage 1; afterwards `relayFor` gives each device its envelopes. */
  closeShareKeys(): void {
    this.#expect("share-keys", this.roundId);
    this.#requireSurvivors(this.#shared.size, "shared keys");
    this.#stage = "masked-input";
  }

  /** The stage-1 relay for one device that shared: U2 and the envelopes its neighbours sealed for it. */
  relayFor(deviceId: string): SecAggShareRelay {
    if (this.#stage !== "masked-input") throw new SecAggError("bad-message", "the relay exists between stages 1 and 2");
    const roster = this.#roster!;
    const u = roster.positionOf(deviceId);
    if (!this.#shared.has(u)) throw new SecAggError("bad-message", `${deviceId} did not share keys`);
    const senders = [...this.#shared.keys()].sort((a, b) => a - b);
    return {
      round_id: this.roundId,
      senders: senders.map((v) => roster.devices[v]!.deviceId),
      shares: senders
        .filter((v) => this.#shared.get(v)!.has(u))
        .map((v) => ({ from: roster.devices[v]!.deviceId, ciphertext: this.#shared.get(v)!.get(u)! })),
    };
  }

  receiveMaskedInput(message: SecAggMaskedInput): void {
    this.#expect("masked-input", message.round_id);
    const roster = this.#roster!;
    const u = roster.positionOf(message.device_id);
    if (!this.#shared.has(u)) throw new SecAggError("bad-message", `${message.device_id} did not share keys`);
    if (this.#masked.has(u)) throw new SecAggError("replayed", `${message.device_id} already sent its masked input`);
    const { length, bits } = roster.parameters;
    const y = decodePackedVector(message.masked, length, bits);
    this.#sum ??= new Uint32Array(length);
    addModInto(this.#sum, y, bits);
    this.#masked.add(u);
  }

  /** Ends stage 2: U3, which every survivor signs. */
  closeMaskedInput(): SecAggConsistencyRequest {
    this.#expect("masked-input", this.roundId);
    this.#requireSurvivors(this.#masked.size, "sent masked inputs");
    const roster = this.#roster!;
    this.#survivors = [...this.#masked].sort((a, b) => a - b).map((u) => roster.devices[u]!.deviceId);
    this.#stage = "consistency";
    return { round_id: this.roundId, survivors: this.#survivors };
  }

  async receiveConsistency(message: SecAggConsistencyCheck): Promise<void> {
    this.#expect("consistency", message.round_id);
    const roster = this.#roster!;
    const u = roster.positionOf(message.device_id);
    if (!this.#masked.has(u)) throw new SecAggError("bad-message", `${message.device_id} is not a survivor`);
    if (this.#signatures.has(u)) throw new SecAggError("replayed", `${message.device_id} already signed`);
    const signed = consistencyBytes(this.roundId, message.device_id, this.#survivors);
    if (!(await verifyEd25519(signed, fromBase64Url(message.signature), roster.devices[u]!.identityKey))) {
      throw new SecAggError("bad-signature", `the consistency signature of ${message.device_id} does not verify`);
    }
    this.#expect("consistency", message.round_id);
    if (this.#signatures.has(u)) throw new SecAggError("replayed", `${message.device_id} already signed`);
    this.#signatures.set(u, message.signature);
  }

  /** Ends stage 3 (U4: the devices that signed); afterwards `unmaskRequestFor` gives each its request. */
  closeConsistency(): void {
    this.#expect("consistency", this.roundId);
    this.#requireSurvivors(this.#signatures.size, "signed the survivors");
    this.#stage = "unmask";
  }

  /** The stage-4 request for one device of U4: U3 and its neighbours' consistency signatures. */
  unmaskRequestFor(deviceId: string): SecAggUnmaskRequest {
    if (this.#stage !== "unmask") throw new SecAggError("bad-message", "unmask requests exist in stage 4 only");
    const roster = this.#roster!;
    const u = roster.positionOf(deviceId);
    if (!this.#signatures.has(u)) throw new SecAggError("bad-message", `${deviceId} did not sign`);
    return {
      round_id: this.roundId,
      survivors: this.#survivors,
      signatures: roster.graph
        .neighboursOf(u)
        .filter((v) => this.#signatures.has(v))
        .map((v) => ({ device_id: roster.devices[v]!.deviceId, signature: this.#signatures.get(v)! })),
    };
  }

  /** A device of U4 reveals its shares: self-mask shares only of survivors, key shares only of dropped senders. */
  receiveUnmask(message: SecAggUnmaskShares): void {
    this.#expect("unmask", message.round_id);
    const roster = this.#roster!;
    const u = roster.positionOf(message.device_id);
    if (!this.#signatures.has(u)) throw new SecAggError("bad-message", `${message.device_id} did not sign`);
    if (this.#unmasked.has(u)) throw new SecAggError("replayed", `${message.device_id} already sent its shares`);
    const point = roster.sharePoint(u);
    const self: [number, Share][] = [];
    const keys: [number, Share][] = [];
    const seen = new Set<number>();
    for (const [list, survived, out] of [
      [message.self_mask_shares, true, self],
      [message.key_shares, false, keys],
    ] as const) {
      for (const { of, share } of list) {
        const v = roster.positionOf(of);
        if (seen.has(v)) throw new SecAggError("bad-message", `two shares of ${of}`);
        seen.add(v);
        // Shares exist only between neighbours, and only of devices that shared (U2).
        if (!roster.graph.areNeighbours(u, v) || !this.#shared.has(v)) {
          throw new SecAggError("bad-message", `${message.device_id} holds no share of ${of}`);
        }
        if (this.#masked.has(v) !== survived) {
          throw new SecAggError(
            "bad-message",
            `the share of ${of} is of the wrong kind for a device that ${survived ? "dropped" : "survived"}`,
          );
        }
        const y = fromBase64Url(share);
        checkShareFormat(y);
        out.push([v, { x: point, y }]);
      }
    }
    for (const [v, s] of self) pushTo(this.#selfMaskShares, v, s);
    for (const [v, s] of keys) pushTo(this.#keyShares, v, s);
    this.#unmasked.add(u);
  }

  /**
   * Ends the round: recovers b_u of every survivor and the masking key of every device that dropped after sharing,
   * removes their masks and returns Σ_{u ∈ U3} x_u mod 2^b. Aborts when some secret has fewer than t shares.
   */
  async finish(): Promise<Uint32Array> {
    this.#expect("unmask", this.roundId);
    const roster = this.#roster!;
    const { threshold, bits, length } = roster.parameters;
    this.#requireSurvivors(this.#unmasked.size, "sent their shares");
    const sum = this.#sum!.slice();
    try {
      for (const u of this.#masked) {
        const seed = combineShares(this.#selfMaskShares.get(u) ?? [], threshold);
        subModInto(sum, await expandMask(seed, length, bits), bits);
      }
      for (const v of this.#shared.keys()) {
        if (this.#masked.has(v)) continue;
        const survivingNeighbours = roster.graph.neighboursOf(v).filter((u) => this.#masked.has(u));
        if (survivingNeighbours.length === 0) continue;
        const secretKey = combineShares(this.#keyShares.get(v) ?? [], threshold);
        const dropped = roster.devices[v]!;
        if (!sameBytes(await x25519PublicKey(secretKey), dropped.maskingKey)) {
          throw new SecAggError("bad-share", `the shares of ${dropped.deviceId}'s key do not match its public key`);
        }
        const seeds = await pairwiseSeeds(
          this.roundId,
          secretKey,
          survivingNeighbours.map((u) => roster.devices[u]!.maskingKey),
        );
        for (const [i, u] of survivingNeighbours.entries()) {
          const pair = await expandMask(seeds[i]!, length, bits);
          // y_u carries +PRG(s_uv) when u < v and −PRG(s_uv) otherwise; take it back out.
          if (u < v) subModInto(sum, pair, bits);
          else addModInto(sum, pair, bits);
        }
      }
    } catch (e) {
      if (e instanceof SecAggError) this.#abort(e.message, e.reason);
      throw e;
    }
    this.#stage = "finished";
    return sum;
  }

  /** How many devices answered the current stage so far (for a driver that closes stages when all have). */
  get answered(): number {
    switch (this.#stage) {
      case "advertise":
        return this.#advertised.size;
      case "share-keys":
        return this.#shared.size;
      case "masked-input":
        return this.#masked.size;
      case "consistency":
        return this.#signatures.size;
      case "unmask":
        return this.#unmasked.size;
      default:
        return 0;
    }
  }

  /** The devices whose inputs are in the sum (U3), once the masked-input stage has closed. */
  get survivors(): readonly string[] {
    return this.#survivors;
  }

  #requireSurvivors(count: number, what: string): void {
    const need = this.#roster!.parameters.minSurvivors;
    if (count < need) this.#abort(`${count} devices ${what}, fewer than the ${need} the round needs`);
  }

  #abort(why: string, reason: SecAggFailure = "below-threshold"): never {
    this.#stage = "aborted";
    this.#abortReason = why;
    this.#sum = undefined;
    this.#selfMaskShares.clear();
    this.#keyShares.clear();
    throw new SecAggError(reason, why);
  }

  #expect(stage: SecAggServerStage, roundId: string): void {
    if (roundId !== this.roundId) throw new SecAggError("bad-message", "the message is for another round");
    if (this.#stage === "aborted") throw new SecAggError("below-threshold", `the round aborted: ${this.#abortReason}`);
    if (this.#stage !== stage)
      throw new SecAggError("bad-message", `the round is in the ${this.#stage} stage, not ${stage}`);
  }
}

function pushTo(map: Map<number, Share[]>, key: number, share: Share): void {
  const list = map.get(key);
  if (list) list.push(share);
  else map.set(key, [share]);
}
