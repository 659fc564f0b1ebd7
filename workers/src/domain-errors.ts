/**
 * @module
 * The edge's one mapping from the libraries' domain errors (which carry no HTTP status) to the wire's `FedgeError`.
 * Libraries (@fedge/ml, @fedge/privacy, @fedge/protocol's codec) raise typed errors; only the edge decides statuses.
 *
 * | domain error                                       | status  | code                  |
 * | -------------------------------------------------- | ------- | --------------------- |
 * | `UpdateCodecError`                                 | 400/413 | its `toFedgeError()`  |
 * | `OnnxFormatError`, `OnnxLayoutError`               | 400     | `invalid_model`       |
 * | `UnsupportedModelError` (valid ONNX, not servable) | 400     | `invalid_model`       |
 * | `PrivacyBudgetExceededError`                       | 409     | `budget_exceeded`     |
 * | `InvalidPrivacyParameterError` (`duplicate_round`) | 409     | `conflict`            |
 * | `InvalidPrivacyParameterError` (other reasons)     | 400     | `bad_request`         |
 * | `SecAggError` (`bad-signature`)                    | 401     | `bad_signature`       |
 * | `SecAggError` (`replayed`, `inconsistent`)         | 409     | `conflict`            |
 * | `SecAggError` (`below-threshold`: round aborted)   | 409     | `round_closed`        |
 * | `SecAggError` (other reasons)                      | 400     | `bad_request`         |
 */
import { FedgeError, UpdateCodecError } from "@fedge/protocol";
import { OnnxFormatError, OnnxLayoutError, UnsupportedModelError } from "@fedge/ml";
import { InvalidPrivacyParameterError, PrivacyBudgetExceededError } from "@fedge/privacy";
import { SecAggError } from "@fedge/secagg";

/** The `FedgeError` a domain error stands for, or `undefined` when `err` is not one the edge knows. */
export function fedgeErrorOf(err: unknown): FedgeError | undefined {
  if (err instanceof FedgeError) return err;
  if (err instanceof UpdateCodecError) return err.toFedgeError();
  if (err instanceof OnnxFormatError || err instanceof OnnxLayoutError || err instanceof UnsupportedModelError) {
    return new FedgeError("invalid_model", 400, err.message, { cause: err });
  }
  if (err instanceof PrivacyBudgetExceededError) {
    return new FedgeError("budget_exceeded", 409, err.message, { cause: err });
  }
  if (err instanceof InvalidPrivacyParameterError) {
    return err.reason === "duplicate_round"
      ? new FedgeError("conflict", 409, err.message, { cause: err })
      : new FedgeError("bad_request", 400, err.message, { cause: err });
  }
  if (err instanceof SecAggError) {
    switch (err.reason) {
      case "bad-signature":
        return new FedgeError("bad_signature", 401, err.message, { cause: err });
      case "replayed":
      case "inconsistent":
        return new FedgeError("conflict", 409, err.message, { cause: err });
      case "below-threshold":
        return new FedgeError("round_closed", 409, err.message, { cause: err });
      default:
        return new FedgeError("bad_request", 400, err.message, { cause: err });
    }
  }
  return undefined;
}
