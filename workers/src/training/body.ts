/**
 * @module
 * Reads a request body up to a byte cap: refuses a declared `Content-Length` above the cap before reading anything,
 * and stops reading a streamed body as soon as it passes the cap. The result starts 4-byte aligned in its own buffer
 * (so the update codec can view a float32 payload in place).
 */
import { FedgeError } from "@fedge/protocol";

function tooLarge(maxBytes: number): FedgeError {
  return new FedgeError("payload_too_large", 413, `the body is larger than this endpoint's cap of ${maxBytes} bytes`);
}

export async function readBodyCapped(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    const n = Number(declared);
    if (Number.isFinite(n) && n > maxBytes) throw tooLarge(maxBytes);
  }
  if (request.body === null) return new Uint8Array(0);
  // A declared length within the cap is what the runtime delivers (it ends the body there): read it in one piece.
  if (declared !== null && /^\d+$/.test(declared)) return new Uint8Array(await request.arrayBuffer());
  const reader = request.body.getReader();
  const expected = declared !== null && Number.isFinite(Number(declared)) ? Number(declared) : 0;
  let buf = new Uint8Array(Math.max(expected, 1024));
  let used = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (used + value.length > maxBytes) {
        await reader.cancel();
        throw tooLarge(maxBytes);
      }
      if (used + value.length > buf.length) {
        const grown = new Uint8Array(Math.min(maxBytes, Math.max(buf.length * 2, used + value.length)));
        grown.set(buf.subarray(0, used));
        buf = grown;
      }
      buf.set(value, used);
      used += value.length;
    }
  } finally {
    reader.releaseLock();
  }
  return used === buf.length ? buf : buf.subarray(0, used);
}
