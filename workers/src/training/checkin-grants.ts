/**
 * @module
 * What this isolate learned when it handed a device its task: the key the device checked in with, the API key it checked
 * in under, its nonce and its tenant, per (round, device). An upload that matches a grant is checked against it without
 * the coordinator's preflight: the signature under the granted key, the nonce, the tenant. The commit then re-checks
 * everything the grant may have missed since (the key the coordinator holds, revocation, the nonce and duplicates, the
 * round still collecting) and a refused commit leaves nothing accepted; the route removes the payload it stored.
 *
 * A grant is used once: the upload that commits with it forgets it, so a resend or a second update takes the ordered
 * path with the preflight. Bounded: the oldest grant goes first, and a device whose grant is gone pays the preflight.
 */

/** A device's task in one round, as the check-in that issued it saw it. */
export interface CheckinGrant {
  /** base64url Ed25519 public key the device checked in with. */
  publicKey: string;
  /** The API key the device was registered under. */
  apiKeyId: string;
  /** base64url single-use nonce issued to the device for the round. */
  nonce: string;
  /** The tenant of the API key the device checked in with. */
  tenant: string;
}

/** Grants kept per isolate (a few hundred bytes each). */
export const CHECKIN_GRANTS_MAX = 4096;

const grants = new Map<string, CheckinGrant>();

const grantKey = (roundId: string, deviceId: string) => `${roundId}\n${deviceId}`;

/** Remembers the task `deviceId` was handed in `roundId`. */
export function rememberGrant(roundId: string, deviceId: string, grant: CheckinGrant): void {
  const key = grantKey(roundId, deviceId);
  grants.delete(key);
  if (grants.size >= CHECKIN_GRANTS_MAX) grants.delete(grants.keys().next().value!);
  grants.set(key, grant);
}

/** The grant an upload may use: only when its nonce and its API key's tenant match the check-in's. */
export function grantFor(roundId: string, deviceId: string, nonce: string, tenant: string): CheckinGrant | null {
  const grant = grants.get(grantKey(roundId, deviceId));
  return grant && grant.nonce === nonce && grant.tenant === tenant ? grant : null;
}

/** Drops the grant (used, or refused at commit). */
export function forgetGrant(roundId: string, deviceId: string): void {
  grants.delete(grantKey(roundId, deviceId));
}
