/**
 * @module
 * Durable Object RPC methods return `Result`s instead of throwing domain errors (RPC does not carry a FedgeError's code
 * and status); routes `unwrap` them into the one error envelope.
 */
import { FedgeError, type ErrorCode } from "@fedge/protocol";

export type Fail = { ok: false; code: ErrorCode; status: number; message: string };
export type Result<T> = ({ ok: true } & T) | Fail;

export function fail(code: ErrorCode, status: number, message: string): Fail {
  return { ok: false, code, status, message };
}

/** The success value, or the failure thrown as a `FedgeError` (accepts RPC results, which come back `& Disposable`). */
export function unwrap<R extends { ok: boolean }>(result: R): Extract<R, { ok: true }> {
  if (!result.ok) {
    const f = result as unknown as Fail;
    throw new FedgeError(f.code, f.status, f.message);
  }
  return result as Extract<R, { ok: true }>;
}
