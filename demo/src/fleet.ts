/**
 * @module
 * The simulated fleet: N devices, each a real `FedgeClient` (@fedge/client) in this Node process with its own
 * Ed25519 device key, its own storage (memory) and therefore its own offline upload queue, holding its own shard of
 * the MNIST train split. Training is in-process (the devices are simulated; that is the CPU cost), every request goes
 * over HTTP to the edge, at most `concurrency` devices at a time (keep-alive connections are reused by Node's fetch).
 *
 * Per round every device checks in (the edge flips the Poisson coin); honest devices call `participate()` (check in,
 * download the model version of the task, train, clip, sign, queue, upload); misbehaving ones (see `misbehave.ts`) do
 * what their kind says when selected. Devices that `offline` says are away that round do not check in at all (their
 * data takes no part in it, so it costs them no privacy). Every honest device keeps its own journal: the rounds it
 * checked in for, whether it was selected, and the edge's upload receipt.
 */
import { FedgeClient, memoryStorage, type FedgeStorage, type PrivacyPolicy } from "@fedge/client";
import type { RoundTask, UpdateReceipt } from "@fedge/protocol";
import { mapPool } from "./pool.ts";
import { MISBEHAVIOURS, misbehavingBytes, postUpdate, readOwnIdentity, type Misbehaviour } from "./misbehave.ts";

export type DeviceRole = "honest" | Misbehaviour;

/** Passes over the devices whose upload is still queued at the end of a round (see `Fleet.retryPending`). */
const RETRY_PASSES = 3;

/** One round in a device's own journal (what the device itself knows). */
export interface JournalEntry {
  roundId: string;
  /** The edge's coin picked it. */
  selected: boolean;
  /** The edge's receipt of its upload (`null` when not selected, or not uploaded). */
  receipt: UpdateReceipt | null;
}

export interface SimulatedDevice {
  index: number;
  role: DeviceRole;
  client: FedgeClient;
  storage: FedgeStorage;
  data: Float32Array;
  labels: Uint8Array;
  /** Rounds this device checked in for, oldest first. */
  journal: JournalEntry[];
}

/** Options of {@link createFleet}. */
export interface FleetOptions {
  baseUrl: string;
  /** The app's API key every device sends (one app, many devices). */
  apiKey: string;
  /** One shard per device (`x` row-major n × 784, `y` labels). */
  shards: { x: Float32Array; y: Uint8Array }[];
  /**
   * Devices per misbehaviour kind (taken from the end of the fleet).
   * @default 0
   */
  misbehavingPerKind?: number;
  /** Requests in flight at most. @default 24 */
  concurrency?: number;
  /** The `fetch` of device `index`'s client (tests inject network faults). @default the global fetch */
  fetchFor?: (index: number) => typeof fetch | undefined;
  /** Retries of each device's client per request. @default 3 */
  maxRetries?: number;
  /** The app's privacy policy on every device (`FedgeClientOptions.privacyPolicy`). @default the SDK's default */
  privacyPolicy?: PrivacyPolicy;
  /** The aggregator key every device pins (`FedgeClientOptions.aggregatorPublicKey`). @default none */
  aggregatorPublicKey?: Uint8Array;
  /**
   * Whether device `index` is away (does not check in) in the fleet's `round`-th round (1-based).
   * @default never
   */
  offline?: (index: number, round: number) => boolean;
}

/** Counts of one fleet round. */
export interface FleetRoundResult {
  checkedIn: number;
  selected: number;
  /** Devices away this round (did not check in). */
  offline: number;
  /** Honest devices whose update the edge accepted (201), replay devices' first upload included. */
  honestAccepted: number;
  /**
   * Uploads (honest devices, replay devices' first one) still in the device's offline queue when the round closed:
   * every retry failed with a retryable error (5xx, 429, timeout). Normally 0.
   */
  queued: number;
  /**
   * Uploads that first came back `queued` (the edge may have stored them and the answer was lost) and were then
   * accepted by the device's own queue flush while the round was still open (the same signed bytes: the edge answers
   * its first receipt, `duplicate: true`, if it had stored them). Counted in `honestAccepted`.
   */
  retried: number;
  /** Selected misbehaving devices by kind. */
  misbehaving: Record<Misbehaviour, number>;
  /** Every refusal a misbehaving request got, by kind: `status code` → count. */
  refusals: Record<Misbehaviour, Record<string, number>>;
  /** Misbehaving requests that were NOT refused (must stay empty). */
  notRefused: { kind: Misbehaviour; status: number }[];
  /** Unexpected errors of honest devices, by error code. */
  errors: Record<string, number>;
  seconds: number;
}

export class Fleet {
  readonly devices: SimulatedDevice[];
  private readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly concurrency: number;
  private readonly offline: (index: number, round: number) => boolean;
  private rounds = 0;

  constructor(o: FleetOptions) {
    this.baseUrl = o.baseUrl;
    this.apiKey = o.apiKey;
    this.concurrency = o.concurrency ?? 24;
    this.offline = o.offline ?? (() => false);
    const bad = o.misbehavingPerKind ?? 0;
    const roles: DeviceRole[] = o.shards.map(() => "honest");
    let at = roles.length - 1;
    for (const kind of MISBEHAVIOURS) for (let k = 0; k < bad && at >= 0; k++) roles[at--] = kind;
    this.devices = o.shards.map((s, index) => {
      const storage = memoryStorage();
      const fetch = o.fetchFor?.(index);
      const client = new FedgeClient({
        baseUrl: o.baseUrl,
        apiKey: o.apiKey,
        storage,
        platform: "demo-node",
        maxRetries: o.maxRetries ?? 3,
        ...(fetch ? { fetch } : {}),
        ...(o.privacyPolicy ? { privacyPolicy: o.privacyPolicy } : {}),
        ...(o.aggregatorPublicKey ? { aggregatorPublicKey: o.aggregatorPublicKey } : {}),
      });
      return { index, role: roles[index]!, client, storage, data: s.x, labels: s.y, journal: [] };
    });
  }

  /** Registers every device (`POST /v1/devices`, one Ed25519 key each). */
  async register(): Promise<void> {
    await mapPool(this.devices, this.concurrency, (d) => d.client.register());
  }

  /** Count of devices per role. */
  roles(): Record<DeviceRole, number> {
    const out = { honest: 0, bad_signature: 0, replay: 0, nan: 0, oversize: 0, dropout: 0 } as Record<
      DeviceRole,
      number
    >;
    for (const d of this.devices) out[d.role]++;
    return out;
  }

  /** Every device takes its turn in `model`'s open round (see the module header). */
  async runRound(model: string): Promise<FleetRoundResult> {
    const t0 = performance.now();
    const round = ++this.rounds;
    const r: FleetRoundResult = {
      checkedIn: 0,
      selected: 0,
      offline: 0,
      honestAccepted: 0,
      queued: 0,
      retried: 0,
      misbehaving: { bad_signature: 0, replay: 0, nan: 0, oversize: 0, dropout: 0 },
      refusals: { bad_signature: {}, replay: {}, nan: {}, oversize: {}, dropout: {} },
      notRefused: [],
      errors: {},
      seconds: 0,
    };
    const pending: { device: SimulatedDevice; roundId: string }[] = [];
    const refused = (kind: Misbehaviour, status: number, code: string) => {
      if (status < 400 || status >= 500) r.notRefused.push({ kind, status });
      const key = `${status} ${code}`;
      r.refusals[kind][key] = (r.refusals[kind][key] ?? 0) + 1;
    };
    await mapPool(this.devices, this.concurrency, async (d) => {
      if (this.offline(d.index, round)) {
        r.offline++;
        return;
      }
      try {
        if (d.role === "honest") {
          const res = await d.client.participate({ model, data: d.data, labels: d.labels });
          r.checkedIn++;
          if (res.roundId !== undefined)
            d.journal.push({
              roundId: res.roundId,
              selected: res.selected,
              receipt: res.selected && res.status === "uploaded" ? res.receipt : null,
            });
          if (!res.selected) return;
          r.selected++;
          // "uploaded" includes a receipt with `duplicate: true` (stored on an earlier attempt whose answer was lost)
          if (res.status === "uploaded") r.honestAccepted++;
          else pending.push({ device: d, roundId: res.roundId });
          return;
        }
        const answer = await d.client.checkin(model);
        r.checkedIn++;
        if (!answer.selected) return;
        r.selected++;
        r.misbehaving[d.role]++;
        if (d.role === "dropout") return; // selected, then gone
        const task: RoundTask = answer.task;
        const me = await readOwnIdentity(d.storage);
        if (d.role === "replay") {
          // First the real update through the SDK (the same task and nonce: the coin answers the same within a round)…
          const res = await d.client.participate({ model, data: d.data, labels: d.labels });
          if (res.selected && res.status === "uploaded") r.honestAccepted++;
          else if (res.selected) pending.push({ device: d, roundId: res.roundId });
        }
        const sent = await postUpdate(
          this.baseUrl,
          this.apiKey,
          task.round_id,
          await misbehavingBytes(d.role, task, me.deviceId, me.secretKey),
        );
        refused(d.role, sent.status, sent.code);
      } catch (e) {
        const code = (e as { code?: string }).code ?? (e as Error).name ?? "error";
        r.errors[code] = (r.errors[code] ?? 0) + 1;
      }
    });
    await this.retryPending(pending, r);
    r.seconds = (performance.now() - t0) / 1000;
    return r;
  }

  /**
   * Before the round closes, the devices whose upload came back `queued` flush their offline queue again (what the
   * SDK does on its next `participate()`, done here while the round is still open), up to `RETRY_PASSES` times with a
   * short pause. An accepted entry moves to `honestAccepted` (and `retried`); what is still pending stays `queued`.
   */
  private async retryPending(
    pending: { device: SimulatedDevice; roundId: string }[],
    r: FleetRoundResult,
  ): Promise<void> {
    let left = pending;
    for (let pass = 0; pass < RETRY_PASSES && left.length > 0; pass++) {
      await new Promise((resolve) => setTimeout(resolve, 250 * (pass + 1)));
      const still: typeof left = [];
      await mapPool(left, this.concurrency, async (p) => {
        try {
          const flushed = await p.device.client.flushQueue();
          const up = flushed.uploaded.find((u) => u.entry.roundId === p.roundId);
          if (up) {
            r.honestAccepted++;
            r.retried++;
            const entry = p.device.journal.find((j) => j.roundId === p.roundId);
            if (entry) entry.receipt = up.receipt;
          } else if (flushed.pending.some((u) => u.entry.roundId === p.roundId)) still.push(p);
          else {
            const dropped = flushed.dropped.find((u) => u.entry.roundId === p.roundId);
            const code = dropped ? (dropped.error?.code ?? dropped.reason) : "lost_from_queue";
            r.errors[code] = (r.errors[code] ?? 0) + 1;
          }
        } catch (e) {
          const code = (e as { code?: string }).code ?? (e as Error).name ?? "error";
          r.errors[code] = (r.errors[code] ?? 0) + 1;
        }
      });
      left = still;
    }
    r.queued = left.length;
  }
}
