/**
 * @module
 * The one domain error of secure aggregation. The edge and the SDK map its `reason` to HTTP statuses and typed
 * exceptions; this package never speaks HTTP.
 */

/**
 * Why a secure-aggregation step refused or gave up:
 * - `bad-message`: a message is malformed, out of order, for another round or stage, or names unknown devices.
 * - `bad-signature`: an Ed25519 signature by a device's registered identity does not verify.
 * - `tampered`: an encrypted device-to-device message fails authentication or its binding (round, stage, sender,
 *   receiver), which is how a replayed or altered message shows.
 * - `replayed`: a message that was already accepted in this stage arrives again.
 * - `below-threshold`: too few devices are left to finish (the round aborts; the server learns nothing).
 * - `inconsistent`: the server's view of the survivors differs from what this device signed or expects.
 * - `bad-share`: a reconstructed secret does not match its public key.
 */
export type SecAggFailure =
  "bad-message" | "bad-signature" | "tampered" | "replayed" | "below-threshold" | "inconsistent" | "bad-share";

export class SecAggError extends Error {
  override readonly name = "SecAggError";
  readonly reason: SecAggFailure;
  constructor(reason: SecAggFailure, message: string) {
    super(message);
    this.reason = reason;
  }
}
