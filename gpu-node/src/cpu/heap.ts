/**
 * @module
 * The cpu backend's memory: one shared WebAssembly memory per backend (visible to the main thread and every worker
 * thread) with a small first-fit allocator over it. Regions are 64-byte aligned (a cache line; also what the SIMD
 * kernels need). The memory grows on demand up to 4 GiB and never shrinks (a wasm memory cannot); freed regions are
 * reused, neighbours merged. Region 0..64 is never handed out, so 0 means "no region".
 */
import { BackendError } from "../errors.ts";
import { MAX_PAGES, PAGE_BYTES, createSharedMemory } from "./simd.ts";

const ALIGN = 64;
const MAX_BYTES = MAX_PAGES * PAGE_BYTES;

interface Free {
  ptr: number;
  size: number;
}

export class SharedHeap {
  readonly memory: WebAssembly.Memory;
  /** Free regions sorted by address, none adjacent to another. */
  private readonly free: Free[] = [];
  /** Size of every live region, by address. */
  private readonly live = new Map<number, number>();
  private top = ALIGN;

  constructor(initialPages = 16) {
    this.memory = createSharedMemory(initialPages);
  }

  /** Bytes currently handed out. */
  get usedBytes(): number {
    let s = 0;
    for (const v of this.live.values()) s += v;
    return s;
  }

  /** Allocates `bytes` (> 0); throws `BackendError("too_large")` past 4 GiB. Returns the byte address. */
  alloc(bytes: number): number {
    const size = Math.ceil(Math.max(bytes, 1) / ALIGN) * ALIGN;
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i]!;
      if (f.size < size) continue;
      const ptr = f.ptr;
      if (f.size === size) this.free.splice(i, 1);
      else {
        f.ptr += size;
        f.size -= size;
      }
      this.live.set(ptr, size);
      return ptr;
    }
    // nothing free fits: take it from the top (reclaiming a free region that ends at the top)
    const last = this.free[this.free.length - 1];
    let ptr = this.top;
    if (last && last.ptr + last.size === this.top) {
      ptr = last.ptr;
      this.free.pop();
    }
    const end = ptr + size;
    if (end > MAX_BYTES) {
      if (ptr !== this.top) this.free.push({ ptr, size: this.top - ptr });
      throw new BackendError(
        "too_large",
        `the cpu backend's memory is limited to 4 GiB (asked for ${bytes} more bytes, ${this.usedBytes} in use)`,
      );
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE_BYTES));
    this.top = Math.max(this.top, end);
    this.live.set(ptr, size);
    return ptr;
  }

  /** Frees a region from {@link alloc} (ignores 0 and unknown addresses). */
  release(ptr: number): void {
    const size = this.live.get(ptr);
    if (size === undefined) return;
    this.live.delete(ptr);
    let i = 0;
    while (i < this.free.length && this.free[i]!.ptr < ptr) i++;
    const region: Free = { ptr, size };
    this.free.splice(i, 0, region);
    const next = this.free[i + 1];
    if (next && region.ptr + region.size === next.ptr) {
      region.size += next.size;
      this.free.splice(i + 1, 1);
    }
    const prev = this.free[i - 1];
    if (prev && prev.ptr + prev.size === region.ptr) {
      prev.size += region.size;
      this.free.splice(i, 1);
    }
  }

  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, length);
  }

  i32(ptr: number, length: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, length);
  }

  f64(ptr: number, length: number): Float64Array {
    return new Float64Array(this.memory.buffer, ptr, length);
  }
}
