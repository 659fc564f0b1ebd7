/**
 * @module
 * The one error type gpu-node throws. A library raises domain errors, not HTTP statuses (house rule 6): callers branch
 * on `reason`, and only the edge, the SDK surface and the CLI turn a reason into an error code, a status or an exit
 * code.
 */

/**
 * Why a backend call failed:
 * - `invalid_argument`: an option or argument is out of range or of the wrong kind (a caller's mistake).
 * - `invalid_type`: an update, delta or state array is not a Float32Array.
 * - `invalid_shape`: an array has the wrong length.
 * - `non_finite`: a value is NaN or ±Infinity, or an update's squared norm overflows float32.
 * - `disposed`: the accumulator, optimizer or backend was already finished or disposed.
 * - `too_large`: the request does not fit the backend (the cpu backend's 4 GiB memory, a device's storage binding).
 * - `unavailable`: the webgpu backend was required but no adapter could be opened.
 * - `device_error`: the WebGPU device reported a validation or out-of-memory error.
 * - `worker_failed`: a worker thread of the cpu backend failed, crashed or exited.
 */
export type BackendErrorReason =
  | "invalid_argument"
  | "invalid_type"
  | "invalid_shape"
  | "non_finite"
  | "disposed"
  | "too_large"
  | "unavailable"
  | "device_error"
  | "worker_failed";

export class BackendError extends Error {
  override readonly name = "BackendError";
  readonly reason: BackendErrorReason;

  constructor(reason: BackendErrorReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
  }
}
