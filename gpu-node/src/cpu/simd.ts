/**
 * @module
 * A tiny WebAssembly SIMD module, emitted as bytes here (no WAT toolchain at build time), with the hot loops of the
 * cpu backend. All give bit-identical results to the TypedArray reference in `math.ts`:
 *
 * - `sumsq8(ptr, n8, out)`: for 8·n8 float32 at `ptr`, lane j (j = 0..7) accumulates x_i² in float64 for i ≡ j (mod 8),
 *   in index order (`f64x2.promote_low_f32x4` then `f64x2.mul`/`f64x2.add`; the square of a float32 is exact in
 *   float64). Adds into the 8 float64 lanes at `out` (64 bytes), so calls chain over pieces of a vector.
 * - `axpy(acc, u, n4, f)`: acc_i ← fl32(acc_i + fl32(f·u_i)) over 4·n4 float32 (`f32x4.mul` then `f32x4.add`, both
 *   correctly rounded, no fused multiply-add in wasm).
 * - `axpy4(acc, u0, u1, u2, u3, n8, f0, f1, f2, f3)`: the same for four rows in one pass over 8·n8 float32, row 0 first
 *   for every element, so it equals four `axpy` calls in row order; acc is loaded and stored once, not four times.
 *
 * Pointers are byte offsets into the imported memory `env.memory`, 16-byte aligned by the caller. The memory is a
 * shared one (`shared: true`, at most {@link MAX_PAGES} pages = 4 GiB), so the same bytes are visible to the worker
 * threads of the cpu backend, each running its own instance of the module over it; pointers above 2³¹ are passed as
 * their i32 bit pattern (wasm addresses are unsigned).
 */

// ---- a minimal encoder ----
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}
function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}
function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}
function str(s: string): number[] {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
}

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;
const simd = (op: number): number[] => [0xfd, ...uleb(op)];
const get = (i: number): number[] => [0x20, ...uleb(i)];
const set = (i: number): number[] => [0x21, ...uleb(i)];
const i32c = (v: number): number[] => [0x41, ...sleb(v)];
const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_EQZ = 0x45;
const END = 0x0b;
const v128load = (offset: number): number[] => [...simd(0x00), 4, ...uleb(offset)];
const v128store = (offset: number): number[] => [...simd(0x0b), 4, ...uleb(offset)];
const F32X4_SPLAT = simd(0x13);
const F32X4_ADD = simd(0xe4);
const F32X4_MUL = simd(0xe6);
const F64X2_ADD = simd(0xf0);
const F64X2_MUL = simd(0xf2);
const F64X2_PROMOTE_LOW = simd(0x5f);
/** i8x16.shuffle moving bytes 8..15 to 0..7 (the high two float32 lanes to the low half). */
const SHUFFLE_HIGH = [...simd(0x0d), 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];

function body(locals: [count: number, type: number][], code: number[]): number[] {
  const b = [...vec(locals.map(([c, t]) => [...uleb(c), t])), ...code, END];
  return [...uleb(b.length), ...b];
}

/** `loop { ...code; n -= 1; br_if n != 0 }` guarded by `if n == 0 skip`. */
function countedLoop(counter: number, code: number[]): number[] {
  return [
    0x02,
    0x40, // block
    ...get(counter),
    I32_EQZ,
    0x0d,
    0, // br_if 0 (skip when zero)
    0x03,
    0x40, // loop
    ...code,
    ...get(counter),
    ...i32c(1),
    I32_SUB,
    ...set(counter),
    ...get(counter),
    0x0d,
    0, // br_if 0 (continue)
    END,
    END,
  ];
}

// sumsq8(ptr, n8, out): params 0..2; locals 3..6 = a0..a3 (v128), 7 = v, 8 = p
function sumsqBody(): number[] {
  const square = (acc: number, high: boolean): number[] => [
    ...get(7),
    ...(high ? [...get(7), ...SHUFFLE_HIGH] : []),
    ...F64X2_PROMOTE_LOW,
    ...set(8),
    ...get(acc),
    ...get(8),
    ...get(8),
    ...F64X2_MUL,
    ...F64X2_ADD,
    ...set(acc),
  ];
  const loop = countedLoop(1, [
    ...get(0),
    ...v128load(0),
    ...set(7),
    ...square(3, false),
    ...square(4, true),
    ...get(0),
    ...v128load(16),
    ...set(7),
    ...square(5, false),
    ...square(6, true),
    ...get(0),
    ...i32c(32),
    I32_ADD,
    ...set(0),
  ]);
  const init: number[] = [];
  const store: number[] = [];
  for (let a = 0; a < 4; a++) {
    init.push(...get(2), ...v128load(16 * a), ...set(3 + a));
    store.push(...get(2), ...get(3 + a), ...v128store(16 * a));
  }
  return body([[6, V128]], [...init, ...loop, ...store]);
}

// axpy(acc, u, n4, f): params 0..3; local 4 = fv (v128)
function axpyBody(): number[] {
  const loop = countedLoop(2, [
    ...get(0),
    ...get(0),
    ...v128load(0),
    ...get(1),
    ...v128load(0),
    ...get(4),
    ...F32X4_MUL,
    ...F32X4_ADD,
    ...v128store(0),
    ...get(0),
    ...i32c(16),
    I32_ADD,
    ...set(0),
    ...get(1),
    ...i32c(16),
    I32_ADD,
    ...set(1),
  ]);
  return body([[1, V128]], [...get(3), ...F32X4_SPLAT, ...set(4), ...loop]);
}

// axpy4(acc, u0, u1, u2, u3, n8, f0, f1, f2, f3): params 0..9; locals 10..13 = f0..f3 splatted (v128)
function axpy4Body(): number[] {
  const vector = (offset: number): number[] => {
    const code = [...get(0), ...get(0), ...v128load(offset)];
    for (let r = 0; r < 4; r++)
      code.push(...get(1 + r), ...v128load(offset), ...get(10 + r), ...F32X4_MUL, ...F32X4_ADD);
    return [...code, ...v128store(offset)];
  };
  const advance: number[] = [];
  for (let p = 0; p < 5; p++) advance.push(...get(p), ...i32c(32), I32_ADD, ...set(p));
  const loop = countedLoop(5, [...vector(0), ...vector(16), ...advance]);
  const init: number[] = [];
  for (let r = 0; r < 4; r++) init.push(...get(6 + r), ...F32X4_SPLAT, ...set(10 + r));
  return body([[4, V128]], [...init, ...loop]);
}

/** The module's bytes. */
export function simdModuleBytes(): Uint8Array<ArrayBuffer> {
  const types = section(
    1,
    vec([
      [0x60, ...vec([[I32], [I32], [I32]]), ...vec([])], // sumsq8
      [0x60, ...vec([[I32], [I32], [I32], [F32]]), ...vec([])], // axpy
      [0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32], [F32], [F32], [F32], [F32]]), ...vec([])], // axpy4
    ]),
  );
  // memory import, limits flag 0x03: has a maximum and is shared
  const imports = section(2, vec([[...str("env"), ...str("memory"), 0x02, 0x03, ...uleb(1), ...uleb(MAX_PAGES)]]));
  const funcs = section(3, vec([[0], [1], [2]]));
  const exports = section(
    7,
    vec([
      [...str("sumsq8"), 0x00, 0],
      [...str("axpy"), 0x00, 1],
      [...str("axpy4"), 0x00, 2],
    ]),
  );
  const code = section(10, vec([sumsqBody(), axpyBody(), axpy4Body()]));
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...types,
    ...imports,
    ...funcs,
    ...exports,
    ...code,
  ]);
}

/** Largest memory, in 64 KiB pages (4 GiB, the wasm32 limit). */
export const MAX_PAGES = 65536;
export const PAGE_BYTES = 65536;

export interface SimdKernels {
  readonly memory: WebAssembly.Memory;
  sumsq8(ptr: number, n8: number, out: number): void;
  axpy(acc: number, u: number, n4: number, f: number): void;
  axpy4(
    acc: number,
    u0: number,
    u1: number,
    u2: number,
    u3: number,
    n8: number,
    f0: number,
    f1: number,
    f2: number,
    f3: number,
  ): void;
}

let compiled: WebAssembly.Module | undefined;

/** The compiled module (compiled once per thread; it can be posted to workers). */
export function simdModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(simdModuleBytes());
  return compiled;
}

/** A fresh shared memory of `initialPages` pages that can grow to {@link MAX_PAGES}. */
export function createSharedMemory(initialPages = 1): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: initialPages, maximum: MAX_PAGES, shared: true });
}

/** Instantiates the module over `memory` (a shared memory; synchronous, the module is 300 bytes). */
export function instantiateSimd(
  memory: WebAssembly.Memory = createSharedMemory(),
  module: WebAssembly.Module = simdModule(),
): SimdKernels {
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  const e = inst.exports as unknown as Omit<SimdKernels, "memory">;
  return { memory, sumsq8: e.sumsq8, axpy: e.axpy, axpy4: e.axpy4 };
}
