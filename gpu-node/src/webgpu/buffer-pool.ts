/**
 * @module
 * Reuse of released device buffers across rounds. Creating and first-touching large buffers costs several ms each
 * round (Dawn zero-fills them lazily), so an accumulator hands its buffers back here on `dispose()` and the next one
 * takes them. A reused buffer keeps its old contents: the key must name every invariant the caller relies on (for
 * example the zero padding of a batch buffer, which only holds for the same row length).
 */

/** Largest total size of released buffers a backend keeps for reuse. */
const SPARE_MAX_BYTES = 768 * 2 ** 20;

export class BufferPool {
  /** Released buffers, by `usage:bytes:key`. */
  private readonly spare = new Map<string, GPUBuffer[]>();
  private spareBytes = 0;
  private readonly create: (bytes: number, usage: number) => GPUBuffer;

  /** `create` makes a fresh buffer when none is spare. */
  constructor(create: (bytes: number, usage: number) => GPUBuffer) {
    this.create = create;
  }

  /** A spare buffer with the same key, usage and size, or a new one. Return it with {@link give}. */
  take(key: string, bytes: number, usage: number): GPUBuffer {
    const b = this.spare.get(`${usage}:${bytes}:${key}`)?.pop();
    if (b) {
      this.spareBytes -= b.size;
      return b;
    }
    return this.create(bytes, usage);
  }

  /** Keeps `b` for a later {@link take} with the same key (destroys it once the pool holds 768 MiB). */
  give(key: string, bytes: number, usage: number, b: GPUBuffer): void {
    if (this.spareBytes + b.size > SPARE_MAX_BYTES) {
      b.destroy();
      return;
    }
    const k = `${usage}:${bytes}:${key}`;
    const list = this.spare.get(k) ?? [];
    list.push(b);
    this.spare.set(k, list);
    this.spareBytes += b.size;
  }
}
