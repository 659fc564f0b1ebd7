/**
 * @module
 * The device's side of SecAgg+ (Bell et al. CCS 2020, Algorithm 2, with the consistency check of Bonawitz et al. CCS
 * 2017 §4.2) as a pure state machine: each method takes the edge's message of one stage, checks it and returns the
 * device's reply. Stages must come in order and each is answered once; anything else throws `SecAggError` and leaves
 * the device's state as it was. No I/O: the caller carries the messages.
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
import { envelopeKey, openEnvelope, sealEnvelope } from "./envelope.ts";
import { SecAggError } from "./errors.ts";
import { pairwiseSeeds, x25519Many, x25519PublicKey, type X25519KeyPair } from "./key-agreement.ts";
import { inModulus, modulusMask } from "./modular.ts";
import { expandMask, PRG_SEED_BYTES } from "./prg.ts";
import { smallestPrivateThreshold } from "./parameters.ts";
import { positionsOf, VerifiedRoster } from "./roster.ts";
import {
  checkShareFormat,
  cryptoRandomBytes,
  SHARE_BYTES,
  splitSecrets,
  type RandomBytes,
  type Share,
} from "./shamir.ts";
import { advertiseBytes, consistencyBytes, consistencyBytesOf } from "./transcript.ts";
import { encodePackedVector } from "./vector-codec.ts";

/**
 * The device's registered Ed25519 identity: its key and a signer. The SDK keeps the secret key, possibly as a
 * non-extractable WebCrypto key, so signing may be asynchronous.
 */
export interface DeviceIdentity {
  deviceId: string;
  publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

export interface SecAggClientOptions {
  roundId: string;
  identity: DeviceIdentity;
  /** @default crypto.getRandomValues */
  random?: RandomBytes;
  /**
   * C: the most roster devices the round states may collude with the server (its noise's `corrupt_devices`). The
   * device refuses a roster whose threshold t does not keep its two secrets apart against C corrupt neighbours
   * (`smallestPrivateThreshold`, 2^−`securityBits`): an edge cannot charge for colluders and run weaker parameters.
   * @default 0
   */
  corruptDevices?: number;
  /** σ of that check. @default 40 */
  securityBits?: number;
}

type Stage = "advertise" | "share-keys" | "masked-input" | "masking" | "consistency" | "unmask" | "done";

/** The two shares a neighbour sealed for this device. */
interface HeldShares {
  maskingKey: Uint8Array;
  selfMask: Uint8Array;
}

export class SecAggClient {
  readonly roundId: string;
  readonly #identity: DeviceIdentity;
  readonly #random: RandomBytes;
  /** The round's X25519 key pairs; the secrets are drawn at construction, the public keys computed in advertise. */
  readonly #encryption: X25519KeyPair;
  readonly #masking: X25519KeyPair;
  /** b_u, the self-mask seed. */
  readonly #selfMaskSeed: Uint8Array;
  readonly #corruptDevices: number;
  readonly #securityBits: number;
  #stage: Stage = "advertise";
  #roster: VerifiedRoster | undefined;
  #me = -1;
  /** Positions of the neighbours that shared (N(u) ∩ U2), with what they sealed for this device. */
  #held = new Map<number, HeldShares>();
  #signedSurvivors: string[] | undefined;
  /** The key of the envelope from each graph neighbour (by position), agreed once in the share-keys stage. */
  #openingKeys = new Map<number, Uint8Array>();
  /** U2 as the relay announced it. */
  #senders = new Set<string>();

  constructor(options: SecAggClientOptions) {
    this.roundId = options.roundId;
    this.#identity = options.identity;
    this.#random = options.random ?? cryptoRandomBytes;
    this.#encryption = { secretKey: this.#random(32), publicKey: new Uint8Array(32) };
    this.#masking = { secretKey: this.#random(32), publicKey: new Uint8Array(32) };
    this.#selfMaskSeed = this.#random(PRG_SEED_BYTES);
    const corrupt = options.corruptDevices ?? 0;
    if (!Number.isSafeInteger(corrupt) || corrupt < 0) {
      throw new RangeError(`corruptDevices must be an integer >= 0, got ${corrupt}`);
    }
    this.#corruptDevices = corrupt;
    this.#securityBits = options.securityBits ?? 40;
  }

  /** The stage whose message the device expects next. */
  get stage(): Stage {
    return this.#stage;
  }

  /** Stage 0: fresh round keys, signed with the device identity. */
  async advertiseKeys(): Promise<SecAggAdvertiseKeys> {
    this.#expect("advertise");
    const { deviceId } = this.#identity;
    const [encryptionKey, maskingKey] = await Promise.all([
      x25519PublicKey(this.#encryption.secretKey),
      x25519PublicKey(this.#masking.secretKey),
    ]);
    this.#encryption.publicKey.set(encryptionKey);
    this.#masking.publicKey.set(maskingKey);
    const signature = await this.#identity.sign(
      advertiseBytes(this.roundId, deviceId, this.#encryption.publicKey, this.#masking.publicKey),
    );
    this.#expect("advertise"); // a second call may have finished meanwhile
    this.#stage = "share-keys";
    return {
      round_id: this.roundId,
      device_id: deviceId,
      encryption_key: toBase64Url(this.#encryption.publicKey),
      masking_key: toBase64Url(this.#masking.publicKey),
      signature: toBase64Url(signature),
    };
  }

  /** Stage 1: verifies the roster and seals, for each graph neighbour, its shares of b_u and of the masking key. */
  async shareKeys(message: SecAggRoster): Promise<SecAggShareKeys> {
    this.#expect("share-keys");
    const roster = new VerifiedRoster(this.roundId, message);
    if (this.#corruptDevices > 0) {
      const { devices, neighbours: k, threshold: t } = roster.parameters;
      // The roster's t must keep C corrupt neighbours plus half the honest ones below it (parameters.ts).
      if (this.#corruptDevices >= devices) {
        throw new SecAggError(
          "bad-message",
          `the round states ${this.#corruptDevices} colluders among ${devices} devices`,
        );
      }
      const needed = smallestPrivateThreshold(devices, this.#corruptDevices, k, 2 ** -this.#securityBits);
      if (t < needed) {
        throw new SecAggError(
          "bad-message",
          `threshold ${t} with k = ${k} does not protect against the round's ${this.#corruptDevices} colluding devices (needs t >= ${needed})`,
        );
      }
    }
    const me = roster.positionOf(this.#identity.deviceId);
    const mine = roster.devices[me]!;
    if (
      !sameBytes(mine.identityKey, this.#identity.publicKey) ||
      !sameBytes(mine.encryptionKey, this.#encryption.publicKey) ||
      !sameBytes(mine.maskingKey, this.#masking.publicKey)
    ) {
      throw new SecAggError("inconsistent", "the roster does not carry this device's keys");
    }
    const { threshold } = roster.parameters;
    const neighbours = roster.graph.neighboursOf(me);
    const [, agreed] = await Promise.all([
      roster.verifyAdvertised(neighbours),
      x25519Many(
        this.#encryption.secretKey,
        neighbours.map((v) => roster.devices[v]!.encryptionKey),
      ),
    ]);
    this.#expect("share-keys"); // a second call may have finished meanwhile: from here on, no await
    const self = this.#identity.deviceId;
    const points = neighbours.map((v) => roster.sharePoint(v));
    const [keyShares, seedShares] = splitSecrets(
      [this.#masking.secretKey, this.#selfMaskSeed],
      points,
      threshold,
      this.#random,
    ) as [Share[], Share[]];
    const shares = neighbours.map((v, i) => {
      const to = roster.devices[v]!;
      const payload = new Uint8Array(2 * SHARE_BYTES);
      payload.set(keyShares[i]!.y);
      payload.set(seedShares[i]!.y, SHARE_BYTES);
      this.#openingKeys.set(v, envelopeKey(this.roundId, to.deviceId, self, agreed[i]!));
      const sealed = sealEnvelope(payload, envelopeKey(this.roundId, self, to.deviceId, agreed[i]!));
      return { to: to.deviceId, ciphertext: toBase64Url(sealed) };
    });
    this.#roster = roster;
    this.#me = me;
    this.#stage = "masked-input";
    return { round_id: this.roundId, device_id: this.#identity.deviceId, shares };
  }

  /**
   * Stage 2: opens the neighbours' envelopes and masks `input` (values in Z_{2^b}, length d'):
   * y_u = x_u + PRG(b_u) + Σ_{v ∈ N(u) ∩ U2} ±PRG(s_uv) mod 2^b, + when u's position is below v's.
   */
  async maskInput(message: SecAggShareRelay, input: Uint32Array): Promise<SecAggMaskedInput> {
    this.#expect("masked-input");
    const roster = this.#roster!;
    const { bits, length } = roster.parameters;
    if (input.length !== length) throw new RangeError(`the round's vectors have ${length} values, got ${input.length}`);
    if (!inModulus(input, bits)) throw new RangeError(`the input has a value outside Z_{2^${bits}}`);
    const { neighbours, held } = this.#openRelay(message, roster);
    this.#stage = "masking"; // one masking at a time
    let masked: Uint32Array;
    try {
      masked = await this.#mask(input, neighbours, roster);
    } catch (err) {
      this.#stage = "masked-input";
      throw err;
    }
    this.#held = held;
    this.#senders = new Set(message.senders);
    this.#stage = "consistency";
    return { round_id: this.roundId, device_id: this.#identity.deviceId, masked: encodePackedVector(masked, bits) };
  }

  /**
   * x + PRG(b_u) + Σ ±PRG(s_uv) mod 2^b. The agreements and expansions run concurrently (native work in WebCrypto);
   * the sum is taken mod 2^32 (Uint32Array wraps) and reduced to b bits once at the end, which is the same since
   * 2^b divides 2^32.
   */
  async #mask(input: Uint32Array, neighbours: readonly number[], roster: VerifiedRoster): Promise<Uint32Array> {
    const { bits, length } = roster.parameters;
    const seeds = await pairwiseSeeds(
      this.roundId,
      this.#masking.secretKey,
      neighbours.map((v) => roster.devices[v]!.maskingKey),
    );
    const masked = input.slice();
    const add = (mask: Uint32Array, sign: 1 | -1): void => {
      if (sign === 1) for (let i = 0; i < length; i++) masked[i] = masked[i]! + mask[i]!;
      else for (let i = 0; i < length; i++) masked[i] = masked[i]! - mask[i]!;
    };
    await Promise.all([
      expandMask(this.#selfMaskSeed, length, bits).then((m) => add(m, 1)),
      ...neighbours.map((v, i) => expandMask(seeds[i]!, length, bits).then((m) => add(m, this.#me < v ? 1 : -1))),
    ]);
    const mask = modulusMask(bits);
    for (let i = 0; i < length; i++) masked[i] = masked[i]! & mask;
    return masked;
  }

  /** Stage 3: signs the survivors U3 the edge announces (a majority that includes this device). */
  async checkConsistency(message: SecAggConsistencyRequest): Promise<SecAggConsistencyCheck> {
    this.#expect("consistency");
    const roster = this.#roster!;
    if (message.round_id !== this.roundId) throw new SecAggError("bad-message", "the request is for another round");
    const survivors = new Set(positionsOf(roster, message.survivors, "survivors"));
    if (!survivors.has(this.#me)) throw new SecAggError("inconsistent", "the survivors leave out this device");
    if (message.survivors.some((id) => !this.#senders.has(id))) {
      throw new SecAggError("inconsistent", "a survivor never shared keys");
    }
    if (survivors.size < roster.parameters.minSurvivors) {
      throw new SecAggError(
        "below-threshold",
        `${survivors.size} survivors, fewer than ${roster.parameters.minSurvivors}`,
      );
    }
    const signature = await this.#identity.sign(
      consistencyBytes(this.roundId, this.#identity.deviceId, message.survivors),
    );
    this.#expect("consistency");
    this.#signedSurvivors = [...message.survivors];
    this.#stage = "unmask";
    return { round_id: this.roundId, device_id: this.#identity.deviceId, signature: toBase64Url(signature) };
  }

  /**
   * Stage 4: after checking that enough devices signed the same U3 this device signed, reveals for each neighbour that
   * shared either its self-mask share (it survived) or its masking-key share (it dropped) — never both.
   */
  async unmask(message: SecAggUnmaskRequest): Promise<SecAggUnmaskShares> {
    this.#expect("unmask");
    const roster = this.#roster!;
    const survivorsIds = this.#signedSurvivors!;
    if (message.round_id !== this.roundId) throw new SecAggError("bad-message", "the request is for another round");
    if (message.survivors.length !== survivorsIds.length || message.survivors.some((id, i) => id !== survivorsIds[i])) {
      throw new SecAggError("inconsistent", "the survivors differ from those this device signed");
    }
    const survivors = new Set(positionsOf(roster, survivorsIds, "survivors"));
    // SecAgg+ checks consistency within the neighbourhood: at least t neighbours signed the same U3 this device signed.
    const signers = new Set<number>();
    for (const { device_id } of message.signatures) {
      const v = roster.positionOf(device_id);
      if (!survivors.has(v)) throw new SecAggError("inconsistent", `${device_id} signed but is not a survivor`);
      if (!roster.graph.areNeighbours(this.#me, v))
        throw new SecAggError("bad-message", `${device_id} is no neighbour`);
      if (signers.has(v)) throw new SecAggError("replayed", `a second consistency signature of ${device_id}`);
      signers.add(v);
    }
    const signedBy = consistencyBytesOf(this.roundId, survivorsIds);
    const verified = await Promise.all(
      message.signatures.map(({ device_id, signature }) =>
        verifyEd25519(
          signedBy(device_id),
          fromBase64Url(signature),
          roster.devices[roster.positionOf(device_id)]!.identityKey,
        ),
      ),
    );
    const forged = verified.indexOf(false);
    if (forged >= 0) {
      const id = message.signatures[forged]!.device_id;
      throw new SecAggError("bad-signature", `the consistency signature of ${id} does not verify`);
    }
    if (signers.size < roster.parameters.threshold) {
      throw new SecAggError("below-threshold", `${signers.size} neighbours signed the survivors, fewer than t`);
    }
    this.#expect("unmask");
    const selfMaskShares: SecAggUnmaskShares["self_mask_shares"] = [];
    const keyShares: SecAggUnmaskShares["key_shares"] = [];
    for (const [v, shares] of [...this.#held].sort((a, b) => a[0] - b[0])) {
      const of = roster.devices[v]!.deviceId;
      if (survivors.has(v)) selfMaskShares.push({ of, share: toBase64Url(shares.selfMask) });
      else keyShares.push({ of, share: toBase64Url(shares.maskingKey) });
    }
    this.#stage = "done";
    return {
      round_id: this.roundId,
      device_id: this.#identity.deviceId,
      self_mask_shares: selfMaskShares,
      key_shares: keyShares,
    };
  }

  /** Opens the envelope of every neighbour in U2; each exactly once, each bound to this round and this device. */
  /**
   * Checks U2 (a majority, with this device and at least t of its neighbours) and opens the envelope of every
   * neighbour in it: each exactly once, each bound to this round and this device.
   */
  #openRelay(
    message: SecAggShareRelay,
    roster: VerifiedRoster,
  ): { neighbours: number[]; held: Map<number, HeldShares> } {
    const { minSurvivors, threshold } = roster.parameters;
    if (message.round_id !== this.roundId) throw new SecAggError("bad-message", "the relay is for another round");
    const senders = new Set(positionsOf(roster, message.senders, "senders"));
    if (!senders.has(this.#me)) throw new SecAggError("inconsistent", "the relay leaves out this device's shares");
    if (senders.size < minSurvivors) {
      throw new SecAggError("below-threshold", `${senders.size} devices shared keys, fewer than ${minSurvivors}`);
    }
    const neighbours = roster.graph.neighboursOf(this.#me).filter((v) => senders.has(v));
    if (neighbours.length < threshold) {
      throw new SecAggError("below-threshold", `${neighbours.length} neighbours shared keys, fewer than ${threshold}`);
    }
    const expected = new Set(neighbours);
    const held = new Map<number, HeldShares>();
    for (const { from, ciphertext } of message.shares) {
      const v = roster.positionOf(from);
      if (held.has(v)) throw new SecAggError("replayed", `a second envelope from ${from}`);
      if (!expected.has(v)) throw new SecAggError("bad-message", `${from} is not a neighbour that shared`);
      const payload = openEnvelope(fromBase64Url(ciphertext), this.#openingKeys.get(v)!);
      if (payload.length !== 2 * SHARE_BYTES) throw new SecAggError("tampered", `the envelope of ${from} is malformed`);
      const maskingKey = payload.slice(0, SHARE_BYTES);
      const selfMask = payload.slice(SHARE_BYTES);
      checkShareFormat(maskingKey);
      checkShareFormat(selfMask);
      held.set(v, { maskingKey, selfMask });
    }
    if (held.size !== neighbours.length) {
      throw new SecAggError("inconsistent", "the relay lacks an envelope from a neighbour it lists as a sender");
    }
    return { neighbours, held };
  }

  #expect(stage: Stage): void {
    if (this.#stage === stage) return;
    const order: Stage[] = ["advertise", "share-keys", "masked-input", "masking", "consistency", "unmask", "done"];
    const replay = order.indexOf(stage) < order.indexOf(this.#stage);
    throw new SecAggError(
      replay ? "replayed" : "bad-message",
      replay ? `the ${stage} stage was already answered` : `expected the ${this.#stage} stage, got ${stage}`,
    );
  }
}
