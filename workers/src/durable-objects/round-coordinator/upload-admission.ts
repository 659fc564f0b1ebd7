/**
 * @module
 * The coordinator's side of an upload, for a round the object already found: the preflight before the signature is
 * checked (no write), a device's standing in a distributed round's secure aggregation (no write), and the commit of an
 * upload: dedupe, index row, payload and counter in one SQLite transaction keyed by round and device, so an accepted
 * update costs one Durable Object call and one transaction, and a refused one writes nothing. The verdicts themselves
 * are pure (`admission.ts`); this capability reads the tables they judge and writes the accepted update.
 */
import { DEFAULT_TENANT, type UpdateReceipt } from "@fedge/protocol";
import type { Result } from "../../training/result.ts";
import {
  admitUpload,
  commitVerdict,
  fillsRound,
  heldKeyVerdict,
  preflight,
  receipt,
  secAggMembership,
  tenantVerdict,
  type SecAggMembership,
  type UploadPreflight,
} from "./admission.ts";
import type { Checkins } from "./checkins.ts";
import type { Payloads } from "./payloads.ts";
import type { Revocations } from "./revocations.ts";
import type { RoundRow, Rounds } from "./rounds.ts";
import type { UpdateIndex } from "./update-index.ts";

export interface CommitInput {
  roundId: string;
  deviceId: string;
  /** base64url nonce from the update. */
  nonce: string;
  sha256: string;
  /** base64url Ed25519 public key the signature verified under. */
  publicKey: string;
  /** The payload's name (`updateStorageKey`: round, device, signed digest). */
  storageKey: string;
  /** The signed update's bytes, stored with the commit (`Payloads`). */
  payload: Uint8Array;
  now: number;
  /**
   * Set when the route skipped `preflightUpload` (it verified under the key from the device's check-in): the commit then
   * checks what the preflight would have, the tenant of the upload's API key and that `publicKey` is the key held here.
   */
  unchecked?: { tenant: string };
}

export type PreflightInput = Omit<CommitInput, "storageKey" | "publicKey" | "payload"> & {
  /** The tenant of the API key the upload came with (only the owner's keys take part). */
  tenant?: string;
};

/** The slice of the RoundCoordinator uploads need. */
export interface UploadAdmissionHost {
  /** The population's owning tenant; null before any round. */
  owner(): string | null;
  /** One SQLite transaction over the tables (a rollback re-reads the cached newest round). */
  transaction(write: () => void): void;
}

/** The tables an upload is judged against and recorded in. */
export interface UploadAdmissionTables {
  rounds: Rounds;
  checkins: Checkins;
  updates: UpdateIndex;
  revocations: Revocations;
  payloads: Payloads;
}

export class UploadAdmission {
  private readonly host: UploadAdmissionHost;
  private readonly tables: UploadAdmissionTables;

  constructor(host: UploadAdmissionHost, tables: UploadAdmissionTables) {
    this.host = host;
    this.tables = tables;
  }

  /** The key this device checked in with, its revocation, and whether the nonce and duplicate rules admit it. */
  preflight(r: RoundRow, input: PreflightInput): Result<UploadPreflight> {
    const { updates, checkins, revocations } = this.tables;
    const owner = this.host.owner();
    if (owner !== null) {
      const tenancy = tenantVerdict(r.model, owner, input.tenant ?? DEFAULT_TENANT);
      if (!tenancy.ok) return tenancy;
    }
    const existing = updates.get(r.seq, input.deviceId);
    const issued = checkins.get(r.seq, input.deviceId);
    return { ok: true, ...preflight(r, input, existing, issued, revocations.has(input.deviceId)) };
  }

  /** A device's standing in a distributed round's secure aggregation. */
  membership(r: RoundRow, deviceId: string, tenant: string): Result<SecAggMembership> {
    const issued = this.tables.checkins.get(r.seq, deviceId);
    return secAggMembership(r, deviceId, this.host.owner(), tenant, issued, this.tables.revocations.has(deviceId));
  }

  /**
   * Accepts an update with its payload in one transaction; the same device and bytes again return the first receipt
   * (nothing stored twice). A refusal writes nothing.
   */
  commit(r: RoundRow, input: CommitInput): Result<{ receipt: UpdateReceipt }> {
    const { rounds, updates, checkins, revocations, payloads } = this.tables;
    const existing = updates.get(r.seq, input.deviceId);
    const issued = checkins.get(r.seq, input.deviceId);
    if (input.unchecked) {
      const owner = this.host.owner();
      const tenancy = owner === null ? null : tenantVerdict(r.model, owner, input.unchecked.tenant);
      if (tenancy && !tenancy.ok) return tenancy;
      const key = heldKeyVerdict(input.deviceId, input.publicKey, existing, issued);
      if (!key.ok) return key;
    }
    const admission = admitUpload(r, input, existing, issued);
    const verdict = commitVerdict(input.deviceId, admission, revocations.has(input.deviceId));
    if (!verdict.ok) return verdict;
    if (verdict.duplicate) return { ok: true, receipt: verdict.duplicate };
    const n = r.accepted + 1;
    this.host.transaction(() => {
      updates.insert(r.seq, {
        n,
        device_id: input.deviceId,
        public_key: input.publicKey,
        sha256: input.sha256,
        byte_length: input.payload.length,
        storage_key: input.storageKey,
        received_at: input.now,
        named_by: "signed_digest",
      });
      payloads.insert(r.seq, input.deviceId, input.payload);
      rounds.countAccepted(r.seq, n);
      if (fillsRound(r, n)) rounds.close(r.seq, "max_reports", input.now);
    });
    rounds.acceptedCounted(r.seq, n);
    return { ok: true, receipt: receipt(r, input.deviceId, input.sha256, input.now, false) };
  }
}
