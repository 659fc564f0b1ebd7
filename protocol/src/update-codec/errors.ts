/**
 * @module
 * `UpdateCodecError`: the one typed failure of `decodeUpdate`, with a machine-readable reason, the byte offset where the
 * problem was detected, and its mapping onto the HTTP error envelope (`toFedgeError`).
 */
import { FedgeError } from "../fedge-error.ts";

/**
 * Why an update was rejected.
 * - `truncated`: the input ends inside the fixed header (before the payload's declared size is known).
 * - `bad_magic`, `unsupported_version`, `bad_dtype`, `bad_flags`: the first 8 bytes are not a v3 fedge update
 *   (`unsupported_version` also for a retired version 1 or 2 body).
 * - `bad_field`: a header field is out of range (clip bit field, id length or charset, rank, a zero dim, scale ≤ 0), a padding byte is not
 *   zero, or an int8 value is −128 (the symmetric range is −127..127).
 * - `shape_mismatch`: the product of the dims differs from the value count.
 * - `length_mismatch`: the header is complete but fewer bytes follow it than its payload and signature need.
 * - `trailing_bytes`: bytes follow the signature.
 * - `non_finite`: a float32 value is NaN/±Inf, the int8 scale is NaN/±Inf, or 127·scale overflows float32.
 * - `oversize`: the input is longer than `maxBytes`.
 * - `bad_signature`: the Ed25519 signature does not verify under the given public key.
 */
export type UpdateCodecErrorReason =
  | "truncated"
  | "bad_magic"
  | "unsupported_version"
  | "bad_dtype"
  | "bad_flags"
  | "bad_field"
  | "shape_mismatch"
  | "length_mismatch"
  | "trailing_bytes"
  | "non_finite"
  | "oversize"
  | "bad_signature";

/** Every reason, in declaration order (for exhaustive tests and docs). */
export const UPDATE_CODEC_ERROR_REASONS: readonly UpdateCodecErrorReason[] = [
  "truncated",
  "bad_magic",
  "unsupported_version",
  "bad_dtype",
  "bad_flags",
  "bad_field",
  "shape_mismatch",
  "length_mismatch",
  "trailing_bytes",
  "non_finite",
  "oversize",
  "bad_signature",
];

/** A malformed, oversize or wrongly signed `application/vnd.fedge.update` body. */
export class UpdateCodecError extends Error {
  readonly reason: UpdateCodecErrorReason;
  /** Byte offset where the problem was detected, when known. */
  readonly offset?: number;
  constructor(reason: UpdateCodecErrorReason, message: string, offset?: number) {
    super(offset === undefined ? message : `${message} (at byte ${offset})`);
    this.name = "UpdateCodecError";
    this.reason = reason;
    if (offset !== undefined) this.offset = offset;
  }

  /**
   * The HTTP error to answer with: `oversize` → 413 `payload_too_large`, `bad_signature` → 400 `bad_signature`,
   * `non_finite` → 400 `non_finite`, every other reason → 400 `malformed_update`.
   */
  toFedgeError(): FedgeError {
    const message = `update rejected (${this.reason}): ${this.message}`;
    switch (this.reason) {
      case "oversize":
        return new FedgeError("payload_too_large", 413, message, { cause: this });
      case "bad_signature":
        return new FedgeError("bad_signature", 400, message, { cause: this });
      case "non_finite":
        return new FedgeError("non_finite", 400, message, { cause: this });
      default:
        return new FedgeError("malformed_update", 400, message, { cause: this });
    }
  }
}
