/**
 * @module
 * A device's part in a distributed round, loaded lazily by `participate()`: the clipped update from the shared device
 * pipeline (or, for a `noise-only` input of a checked-in cohort, a zero update without training), encoded with the round's distributed discrete Gaussian (Kairouz, Liu, Steinke 2021: clip, rotate, round,
 * this device's noise share, mod 2^b; or the app's own encoder), then SecAgg+ (`@fedge/secagg`'s client state machine) against the edge's
 * `/v1/rounds/{id}/secagg/*`. For each stage the device waits until the edge is in it, reads what it needs, answers,
 * and moves on; every request carries the device's Ed25519 signature over method, path, timestamp and body hash. Each
 * stage closes at the deadline the task states (`secure_aggregation.stage_deadlines`): a stage the edge closed before
 * the device answered (409 `stage_closed`, or the edge already past it) ends its part (`dropped`), and the device waits
 * for a stage no longer than its deadline; a message that fails the protocol's checks ends it too (`refused`),
 * revealing nothing more.
 *
 * Timing: a noise-only device trains nothing, so it advertises its keys sooner after its check-in than a training
 * device would; every later message waits for the edge to reach its stage (polled every `pollMs` alike), so masked
 * inputs arrive in the same stage window whatever the input. What the edge could read from the gap it already knows:
 * it flipped the coins. Other devices see only the roster and the envelopes the edge relays at stage boundaries.
 */
import {
  SECAGG_DEVICE_HEADER,
  SECAGG_SIGNATURE_HEADER,
  SECAGG_TIMESTAMP_HEADER,
  secAggRequestSigningBytes,
  sha256Hex,
  type RoundTask,
  type SecAggConsistencyRequest,
  type SecAggRoster,
  type SecAggShareRelay,
  type SecAggStatus,
  type SecAggUnmaskRequest,
} from "@fedge/protocol";
import { encodeDistributedDeviceUpdate } from "@fedge/ml";
import { inModulus, SecAggClient, SecAggError } from "@fedge/secagg";
import { trainForTask } from "./build-update.ts";
import {
  APIUserAbortError,
  FedgeAPIError,
  FedgeClientError,
  InvalidInputError,
  SecureAggregationError,
} from "./core/errors.ts";
import { toBase64Url } from "./internal/encoding.ts";
import { signWith, type StoredIdentity } from "./identity.ts";
import type { Transport } from "./internal/transport.ts";
import type { ParticipateOptions, ParticipateResult, SecAggEncoder, SecureAggregationStats } from "./types.ts";

export interface SecureParticipation {
  task: RoundTask;
  /**
   * What the device inputs: its trained update, or (`noise-only`, a checked-in cohort whose coin left it out) a zero
   * update through the same encoder, so its noise share is in the sum whether or not its update is.
   */
  input: "update" | "noise-only";
  identity: StoredIdentity & { deviceId: string };
  options: ParticipateOptions;
  transport: Transport;
  random: (buf: Uint8Array) => void;
  /** The task's model, verified and cached as for every participate(). */
  loadModel(): Promise<{ bytes: Uint8Array }>;
}

const STAGES = ["advertise", "share-keys", "masked-input", "consistency", "unmask"] as const;
/** How far the device's clock may be from the edge's when it judges a stage's deadline, in ms. */
const CLOCK_SLACK_MS = 5000;
type Stage = (typeof STAGES)[number];

/** The device's whole part in distributed round `p.task`, checked by the privacy policy already. */
export async function participateSecurely(p: SecureParticipation): Promise<ParticipateResult> {
  const { task, options } = p;
  const encoder = options.encoder ?? distributedGaussianEncoder(p.random);
  if (typeof encoder !== "function") {
    throw new InvalidInputError("encoder", "must be a function: the clipped update → its encoded vector");
  }
  const positive = (name: string, v: unknown, fallback: number): number => {
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new InvalidInputError(`secureAggregation.${name}`, `must be a finite number > 0, got ${String(v)}`);
    }
    return v;
  };
  const pollMs = positive("pollMs", options.secureAggregation?.pollMs, 1000);
  const timeoutMs = positive("timeoutMs", options.secureAggregation?.timeoutMs, 600_000);
  if (Date.parse(task.deadline) <= Date.now()) {
    throw new FedgeClientError("round_expired", `round ${task.round_id} passed its deadline ${task.deadline}`);
  }
  // A noise-only device loads the model too: its traffic before the round looks like a training device's.
  const model = await p.loadModel();
  const stats = await aggregateSecurely(p, model.bytes, encoder, pollMs, timeoutMs);
  return {
    selected: true,
    status: "aggregated",
    roundId: task.round_id,
    modelVersion: task.model_version,
    receipt: null,
    stats,
  };
}

/**
 * The round's own encoder: KLS21's device step with the task's noise and rotation seed (@fedge/ml
 * `encodeDistributedDeviceUpdate`), its rounding coins and noise share drawn from the client's CSPRNG.
 */
function distributedGaussianEncoder(random: (buf: Uint8Array) => void): SecAggEncoder {
  return (clipped, task) => {
    if (!task.distributed || task.clip_norm === undefined) {
      throw new FedgeClientError("invalid_task", `task ${task.round_id} names no distributed noise`);
    }
    try {
      return encodeDistributedDeviceUpdate(
        clipped,
        { privacy_mode: "distributed", clip_norm: task.clip_norm, distributed: task.distributed },
        random,
      ).encoded;
    } catch (err) {
      if (err instanceof RangeError)
        throw new FedgeClientError("invalid_task", `task ${task.round_id}: ${err.message}`);
      throw err;
    }
  };
}

async function aggregateSecurely(
  p: SecureParticipation,
  modelBytes: Uint8Array,
  encoder: SecAggEncoder,
  pollMs: number,
  timeoutMs: number,
): Promise<SecureAggregationStats> {
  const { task } = p;
  const sa = task.secure_aggregation!;
  // The shared device pipeline with the distributed task's clip: train, Δ, clip to C (no clip bit, no local noise);
  // a noise-only input is a zero update, encoded (rotated, rounded, its noise share added) exactly like a trained one.
  const { update, samples } =
    p.input === "noise-only"
      ? { update: zeroUpdate(task.update_length), samples: 0 }
      : trainForTask({
          task: { ...task, privacy_mode: "central", report_clip_bit: false },
          modelBytes,
          data: p.options.data,
          labels: p.options.labels,
          random: p.random,
        });
  const encoded = await encoder(update.values, task);
  if (
    !(encoded instanceof Uint32Array) ||
    encoded.length !== sa.encoded_length ||
    !inModulus(encoded, sa.modulus_bits)
  ) {
    throw new InvalidInputError(
      "encoder",
      `must return a Uint32Array of ${sa.encoded_length} values in Z_{2^${sa.modulus_bits}}`,
    );
  }

  const roundId = task.round_id;
  const base = `/v1/rounds/${roundId}/secagg`;
  const deadline = Date.now() + timeoutMs;
  const traffic = { sent: 0, received: 0 };
  const client = new SecAggClient({
    roundId,
    identity: {
      deviceId: p.identity.deviceId,
      publicKey: p.identity.publicKey,
      sign: (m) => signWith(p.identity, m),
    },
    random: (n) => {
      const out = new Uint8Array(n);
      p.random(out);
      return out;
    },
    // The colluders the round is charged for: the roster's threshold must hold against them too.
    corruptDevices: task.distributed?.corrupt_devices ?? 0,
  });

  const call = async <T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> => {
    const bytes = body === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(body));
    const timestamp = new Date().toISOString();
    const signed = secAggRequestSigningBytes(method, path, p.identity.deviceId, timestamp, await sha256Hex(bytes));
    const signature = await signWith(p.identity, signed);
    const res = await p.transport.request(
      {
        method,
        path,
        headers: {
          [SECAGG_DEVICE_HEADER]: p.identity.deviceId,
          [SECAGG_TIMESTAMP_HEADER]: timestamp,
          [SECAGG_SIGNATURE_HEADER]: toBase64Url(signature),
        },
        ...(body === undefined ? {} : { body: bytes, contentType: "application/json" }),
      },
      p.options,
    );
    traffic.sent += bytes.length;
    traffic.received += res.body.length;
    return JSON.parse(new TextDecoder().decode(res.body)) as T;
  };

  /**
   * Waits until the edge is in `stage`; throws when it has moved past it, aborted, or the wait is over (the stage's
   * deadline, a little after for clocks that differ, or `timeoutMs`).
   */
  const reach = async (stage: Stage): Promise<void> => {
    const stageDeadline = Date.parse(sa.stage_deadlines[stage]) + CLOCK_SLACK_MS;
    for (;;) {
      const { stage: now } = await call<SecAggStatus>("GET", base);
      if (now === stage || (stage === "advertise" && now === "not_open")) return;
      if (now === "aborted")
        throw new SecureAggregationError("aborted", roundId, "the round's secure aggregation aborted");
      const at = (STAGES as readonly string[]).indexOf(now);
      if (now === "finished" || at > STAGES.indexOf(stage)) {
        throw new SecureAggregationError(
          "dropped",
          roundId,
          `the edge closed the ${stage} stage before this device answered`,
        );
      }
      if (Date.now() + pollMs > Math.min(deadline, stageDeadline)) {
        throw new SecureAggregationError("timeout", roundId, `the round did not reach the ${stage} stage in time`);
      }
      await sleep(pollMs, p.options.signal);
    }
  };

  try {
    await reach("advertise");
    await call("POST", `${base}/advertise`, await client.advertiseKeys());
    await reach("share-keys");
    const roster = await call<SecAggRoster>("GET", `${base}/share-keys`);
    // The device's noise share protects it only inside a sum of at least the charged shares: it shares no secret
    // (and so masks nothing) under a roster that would let the edge release a smaller sum.
    const shares = task.distributed?.noise_shares ?? 1;
    if (!(roster.parameters?.min_survivors >= shares)) {
      throw new SecureAggregationError(
        "refused",
        roundId,
        `the roster releases a sum of ${String(roster.parameters?.min_survivors)} inputs, fewer than the ${shares} noise shares the round was charged for`,
      );
    }
    await call("POST", `${base}/share-keys`, await client.shareKeys(roster));
    await reach("masked-input");
    const relay = await call<SecAggShareRelay>("GET", `${base}/masked-input`);
    await call("POST", `${base}/masked-input`, await client.maskInput(relay, encoded));
    await reach("consistency");
    const survivors = await call<SecAggConsistencyRequest>("GET", `${base}/consistency`);
    await call("POST", `${base}/consistency`, await client.checkConsistency(survivors));
    await reach("unmask");
    const request = await call<SecAggUnmaskRequest>("GET", `${base}/unmask`);
    await call("POST", `${base}/unmask`, await client.unmask(request));
  } catch (err) {
    if (err instanceof FedgeAPIError && err.code === "stage_closed") {
      throw new SecureAggregationError("dropped", roundId, err.message, { cause: err });
    }
    if (err instanceof FedgeAPIError && err.code === "round_closed") {
      throw new SecureAggregationError("aborted", roundId, err.message, { cause: err });
    }
    if (err instanceof SecAggError) {
      throw new SecureAggregationError("refused", roundId, `${err.reason}: ${err.message}`, { cause: err });
    }
    throw err;
  }
  return {
    input: p.input,
    samples,
    loss: update.loss,
    steps: update.steps,
    updateLength: update.values.length,
    updateNorm: update.norm,
    clipFactor: update.clipFactor,
    encodedLength: sa.encoded_length,
    modulusBits: sa.modulus_bits,
    bytesSent: traffic.sent,
    bytesReceived: traffic.received,
  };
}

/** A noise-only device's update: zero everywhere, nothing trained (its norm 0, never clipped). */
function zeroUpdate(length: number) {
  return { values: new Float32Array(length), loss: Number.NaN, steps: 0, norm: 0, clipFactor: 1 };
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new APIUserAbortError({ cause: signal.reason }));
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(new APIUserAbortError({ cause: signal.reason }));
      },
      { once: true },
    );
  });
}
