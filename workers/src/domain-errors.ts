/**
 * @module
 * The edge's one mapping from the libraries' domain errors (which carry no HTTP status) to the wire's `FedgeError`.
 * Libraries (@fedge/ml, @fedge/privacy, @fedge/protocol's codec) raise typed errors; only the edge decides statuses.
 */
import { FedgeError } from "@fedge/protocol";
import { OnnxFormatError, OnnxLayoutError } from "@fedge/ml";

/** The `FedgeError` a domain error stands for, or `undefined` when `err` is not one the edge knows. */
export function fedgeErrorOf(err: unknown): FedgeError | undefined {
  if (err instanceof OnnxFormatError || err instanceof OnnxLayoutError) {
    return new FedgeError("invalid_model", 400, err.message, { cause: err });
  }
  return undefined;
}
