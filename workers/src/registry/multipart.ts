/**
 * @module
 * A streaming `multipart/form-data` reader (RFC 7578) for model uploads. `Request.formData()` buffers the whole body
 * and then copies every file part into a `File`: two copies of a model in a 128 MB isolate. This reads the body
 * stream chunk by chunk and appends a file part's bytes straight into one buffer (sized from `Content-Length` when
 * known), so an upload costs one copy of the model; a part over its cap stops the read at once (413) instead of after
 * the whole body arrived.
 */
import { FedgeError } from "@fedge/protocol";

export interface MultipartLimits {
  /** Largest file part (bytes). */
  maxFileBytes: number;
  /** Largest text field (bytes). @default 256 KiB */
  maxFieldBytes?: number;
  /** Most parts. @default 16 */
  maxParts?: number;
  /** Largest body in total (every part, the framing, the epilogue): a stream is cut off past it (413). */
  maxBodyBytes?: number;
}

export interface MultipartFile {
  filename: string;
  bytes: Uint8Array;
}

export interface MultipartForm {
  fields: Map<string, string>;
  files: Map<string, MultipartFile>;
}

const CRLF = new Uint8Array([13, 10]);
const MAX_HEADER_BYTES = 8 * 1024;

function bad(message: string): FedgeError {
  return new FedgeError("validation_failed", 400, `multipart body: ${message}`);
}

/** The boundary parameter of a `multipart/form-data` content type. */
export function multipartBoundary(contentType: string | undefined): string {
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType ?? "");
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) throw bad("the content type has no boundary");
  return boundary;
}

/** A byte buffer that grows by doubling, up to a cap. */
class Sink {
  private buf: Uint8Array;
  private readonly cap: number;
  private readonly onOverflow: () => FedgeError;
  length = 0;
  constructor(initial: number, cap: number, onOverflow: () => FedgeError) {
    this.cap = cap;
    this.onOverflow = onOverflow;
    this.buf = new Uint8Array(Math.max(0, Math.min(initial, cap)));
  }
  push(bytes: Uint8Array): void {
    const need = this.length + bytes.byteLength;
    if (need > this.cap) throw this.onOverflow();
    if (need > this.buf.byteLength) {
      const next = new Uint8Array(Math.min(this.cap, Math.max(need, 2 * this.buf.byteLength, 4096)));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
    }
    this.buf.set(bytes, this.length);
    this.length = need;
  }
  /** The bytes (a view when the buffer is exactly full, else a trimmed view). */
  take(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0]!;
  const last = hay.byteLength - needle.byteLength;
  for (let i = hay.indexOf(first, from); i !== -1 && i <= last; i = hay.indexOf(first, i + 1)) {
    let k = 1;
    while (k < needle.byteLength && hay[i + k] === needle[k]) k++;
    if (k === needle.byteLength) return i;
  }
  return -1;
}

function parseHeaders(text: string): { name: string; filename: string | undefined } {
  let disposition: string | undefined;
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === "content-disposition") {
      disposition = line.slice(colon + 1).trim();
    }
  }
  if (!disposition || !/^form-data\s*(;|$)/i.test(disposition)) throw bad("a part has no form-data disposition");
  const param = (key: string) => {
    const m =
      new RegExp(`;\\s*${key}="([^"]*)"`, "i").exec(disposition!) ??
      new RegExp(`;\\s*${key}=([^;\\s]+)`, "i").exec(disposition!);
    return m?.[1];
  };
  const name = param("name");
  if (!name) throw bad("a part has no name");
  return { name, filename: param("filename") };
}

/**
 * Read a `multipart/form-data` body, streamed or already in memory (bytes another reader took). Text parts become
 * `fields` (UTF-8), parts with a filename become `files`. Throws `FedgeError` 413 `payload_too_large` past a cap and
 * 400 `validation_failed` for a malformed body.
 */
export async function readMultipart(
  source: ReadableStream<Uint8Array> | Uint8Array | null,
  contentType: string | undefined,
  limits: MultipartLimits,
  contentLength?: number,
): Promise<MultipartForm> {
  const boundary = multipartBoundary(contentType);
  const maxField = limits.maxFieldBytes ?? 256 * 1024;
  const maxParts = limits.maxParts ?? 16;
  const maxBody = limits.maxBodyBytes ?? Infinity;
  if (!source) throw bad("the body is empty");
  const body =
    source instanceof Uint8Array
      ? new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(source);
            controller.close();
          },
        })
      : source;
  const delimiter = new TextEncoder().encode(`\r\n--${boundary}`);
  const reader = body.getReader();
  const form: MultipartForm = { fields: new Map(), files: new Map() };

  // `pending` holds bytes not yet consumed; a leading CRLF lets the first boundary match the same delimiter.
  let pending: Uint8Array = CRLF;
  let done = false;
  let read = 0;
  const more = async (): Promise<boolean> => {
    if (done) return false;
    const { value, done: end } = await reader.read();
    if (end) {
      done = true;
      return false;
    }
    read += value.byteLength;
    if (read > maxBody) throw new FedgeError("payload_too_large", 413, `the body exceeds the cap of ${maxBody} bytes`);
    const next = new Uint8Array(pending.byteLength + value.byteLength);
    next.set(pending);
    next.set(value, pending.byteLength);
    pending = next;
    return true;
  };

  try {
    // Preamble up to the first delimiter.
    for (;;) {
      const at = indexOf(pending, delimiter, 0);
      if (at >= 0) {
        pending = pending.subarray(at + delimiter.byteLength);
        break;
      }
      if (pending.byteLength > MAX_HEADER_BYTES) throw bad("no boundary found");
      if (!(await more())) throw bad("no boundary found");
    }
    let parts = 0;
    for (;;) {
      while (pending.byteLength < 2) if (!(await more())) throw bad("truncated after a boundary");
      if (pending[0] === 45 && pending[1] === 45) break; // "--": the closing delimiter
      // Headers: after the boundary line's CRLF, up to an empty line.
      let end: number;
      for (;;) {
        end = indexOf(pending, new Uint8Array([13, 10, 13, 10]), 0);
        if (end >= 0) break;
        if (pending.byteLength > MAX_HEADER_BYTES) throw bad("part headers are too long");
        if (!(await more())) throw bad("truncated part headers");
      }
      const headerText = new TextDecoder().decode(pending.subarray(0, end));
      const { name, filename } = parseHeaders(headerText.replace(/^[ \t]*\r\n/, ""));
      if (++parts > maxParts) throw bad(`more than ${maxParts} parts`);
      pending = pending.subarray(end + 4);
      const isFile = filename !== undefined;
      const cap = isFile ? limits.maxFileBytes : maxField;
      const sink = new Sink(isFile ? Math.min(contentLength ?? 0, cap) : 0, cap, () =>
        isFile
          ? new FedgeError("payload_too_large", 413, `part ${name} exceeds the cap of ${cap} bytes`)
          : bad(`field ${name} exceeds ${cap} bytes`),
      );
      // Body: everything up to the next delimiter; keep delimiter-length − 1 bytes back across chunks.
      for (;;) {
        const at = indexOf(pending, delimiter, 0);
        if (at >= 0) {
          sink.push(pending.subarray(0, at));
          pending = pending.subarray(at + delimiter.byteLength);
          break;
        }
        const safe = pending.byteLength - (delimiter.byteLength - 1);
        if (safe > 0) {
          sink.push(pending.subarray(0, safe));
          pending = pending.subarray(safe);
        }
        if (!(await more())) throw bad(`part ${name} is not terminated by a boundary`);
      }
      if (isFile) form.files.set(name, { filename, bytes: sink.take() });
      else {
        try {
          form.fields.set(name, new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(sink.take()));
        } catch {
          throw bad(`field ${name} is not UTF-8`);
        }
      }
    }
    // Drain the epilogue without keeping it.
    while (await more()) pending = pending.subarray(pending.byteLength);
  } catch (err) {
    await reader.cancel().catch(() => undefined);
    throw err;
  }
  return form;
}
