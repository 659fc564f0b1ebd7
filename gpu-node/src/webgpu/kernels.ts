/**
 * @module
 * WGSL compute kernels of the webgpu backend. Every kernel works on one chunk (≤ maxStorageBufferBindingSize) of the
 * parameter vector; the host loops over chunks. Arithmetic is chosen so the host can reproduce it (see `backend.ts`):
 * additions and multiplications of float32 are correctly rounded in WGSL, while division and sqrt are not, so
 * divisions happen on the host (clip factors, 1/denominator, quantization scales) and quantization uses integer
 * arithmetic on the float bits.
 */

/** Workgroups (segments) per row of the norm kernel (at most). */
export const NORM_WORKGROUPS = 16;
/** Invocations per workgroup of the norm kernel (small workgroups run much faster on lavapipe, measured 2-3×). */
export const NORM_WORKGROUP = 64;
/** Float32 partials per segment: every invocation writes a vec4 (so 16 segments × 64 × 4 = 4,096 per row and chunk). */
export const NORM_PARTIALS_PER_SEGMENT = NORM_WORKGROUP * 4;
export const WORKGROUP = 256;

/** Per-chunk uniform: element count, row stride of the batch buffer (a multiple of 4), norm segments (workgroups per row). */
export const CHUNK_PARAMS = /* wgsl */ `
struct Chunk { n: u32, stride: u32, segments: u32, rows: u32 };
`;

/**
 * Squared-norm partials without workgroup barriers (barriers are slow on software rasterisers): the row's vec4s are
 * cut into `segments` contiguous segments, one per workgroup (contiguous memory per workgroup suits CPU devices;
 * consecutive invocations still read consecutive vec4s, which suits GPUs); invocation t of a segment sums x² of the
 * vec4s t, t + 64, t + 128, … of its segment in float32 with Kahan compensation (Kahan 1965), lane by lane, and
 * writes the four lane sums to partials[(row·segments + segment)·64 + t]. Rows are padded with zeros to a multiple of
 * 4. The host adds the partials of every chunk in float64, so the squared norm agrees with the cpu reference within a
 * relative 2⁻¹⁹ (stated tolerance; Kahan keeps each partial within ~2 ulp).
 */
export const NORM_PARTIALS = /* wgsl */ `
${CHUNK_PARAMS}
@group(0) @binding(0) var<storage, read> batch: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> partials: array<vec4f>;
@group(0) @binding(2) var<uniform> chunk: Chunk;

@compute @workgroup_size(${NORM_WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wg.y;
  let n4 = chunk.stride / 4u;
  let base = row * n4;
  let seg = (n4 + chunk.segments - 1u) / chunk.segments;
  let lo = wg.x * seg;
  let hi = min(n4, lo + seg);
  var s = vec4f(0.0);
  var c = vec4f(0.0);
  for (var i = lo + li; i < hi; i = i + ${NORM_WORKGROUP}u) {
    let x = batch[base + i];
    let y = x * x - c;
    let u = s + y;
    c = (u - s) - y;
    s = u;
  }
  partials[(row * chunk.segments + wg.x) * ${NORM_WORKGROUP}u + li] = s;
}
`;

/**
 * Scaled accumulate of a batch: acc_i ← acc_i + f_k·u_k,i for k = 0..rows−1 in order, four elements per invocation
 * (vec4 loads; rows are padded to a multiple of 4 with zeros). The product is rounded before the addition unless the
 * driver fuses it; the conformance test checks bit-equality with the cpu reference on this adapter.
 */
export const ACCUMULATE = /* wgsl */ `
${CHUNK_PARAMS}
@group(0) @binding(0) var<storage, read> batch: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> acc: array<vec4f>;
@group(0) @binding(2) var<storage, read> factors: array<f32>;
@group(0) @binding(3) var<uniform> chunk: Chunk;
@group(0) @binding(4) var<uniform> rows: vec4u;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let stride4 = chunk.stride / 4u;
  if (i >= stride4) { return; }
  var a = acc[i];
  for (var k = 0u; k < rows.x; k = k + 1u) {
    let p = factors[k] * batch[k * stride4 + i];
    a = a + p;
  }
  acc[i] = a;
}
`;

/** out_i = (acc_i + noise_i)·r (noise flag set) or acc_i·r, written over acc. */
export const FINISH = /* wgsl */ `
struct Finish { n: u32, noise: u32, recip: f32, pad: u32 };
@group(0) @binding(0) var<storage, read_write> acc: array<f32>;
@group(0) @binding(1) var<storage, read> noise: array<f32>;
@group(0) @binding(2) var<uniform> p: Finish;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= p.n) { return; }
  if (p.noise == 1u) {
    let s = acc[i] + noise[i];
    acc[i] = s * p.recip;
  } else {
    acc[i] = acc[i] * p.recip;
  }
}
`;

/**
 * Server optimizer step (Reddi et al. 2020, arXiv 2003.00295 Alg. 2; momentum SGD per Hsu et al. 2019, arXiv
 * 1909.06335). kind: 0 sgd, 1 sgd+momentum, 2 adam, 3 yogi.
 */
export const OPTIMIZER = /* wgsl */ `
struct Opt { n: u32, kind: u32, lr: f32, mu: f32, b1: f32, b2: f32, eps: f32, pad: f32 };
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> m: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read> delta: array<f32>;
@group(0) @binding(4) var<uniform> p: Opt;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= p.n) { return; }
  let d = delta[i];
  if (p.kind == 0u) {
    x[i] = x[i] + p.lr * d;
  } else if (p.kind == 1u) {
    let mi = p.mu * m[i] + d;
    m[i] = mi;
    x[i] = x[i] + p.lr * mi;
  } else {
    let mi = p.b1 * m[i] + (1.0 - p.b1) * d;
    let d2 = d * d;
    let vp = v[i];
    var vi: f32;
    if (p.kind == 2u) {
      vi = p.b2 * vp + (1.0 - p.b2) * d2;
    } else {
      vi = vp - (1.0 - p.b2) * d2 * sign(vp - d2);
    }
    m[i] = mi;
    v[i] = vi;
    x[i] = x[i] + p.lr * mi / (sqrt(vi) + p.eps);
  }
}
`;

/**
 * Column absmax of a row block of row-major W (read as raw bits: |x| is bits & 0x7fffffff, and for non-negative
 * floats the unsigned order of the bits is the float order, subnormals included, so no flush-to-zero can interfere).
 */
export const ABSMAX = /* wgsl */ `
struct Q { rows: u32, cols: u32, n: u32, pad: u32 };
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read_write> amax: array<u32>;
@group(0) @binding(2) var<uniform> p: Q;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= p.cols) { return; }
  var m = amax[j];
  for (var i = 0u; i < p.rows; i = i + 1u) {
    m = max(m, w[i * p.cols + j] & 0x7fffffffu);
  }
  amax[j] = m;
}
`;

/**
 * Per-channel int8 quantization, exact: q = clamp(round_half_away_from_zero(w/s), −127, 127) computed from the
 * integer mantissas (w/s = (m_w/m_s)·2^d; the quotient and remainder of an integer division decide the rounding),
 * so no float division is involved. Four values are packed per u32 (little-endian bytes).
 */
export const QUANTIZE = /* wgsl */ `
struct Q { rows: u32, cols: u32, n: u32, pad: u32 };
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> scales: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> p: Q;

// mantissa normalised to [2^23, 2^24) and its exponent, for a finite non-zero float given by bits
fn mant(b: u32) -> vec2i {
  var e = i32((b >> 23u) & 0xffu);
  var m = b & 0x7fffffu;
  if (e == 0) { e = 1; } else { m = m | 0x800000u; }
  let sh = countLeadingZeros(m) - 8u;
  return vec2i(i32(m << sh), e - i32(sh));
}

fn quant(wb: u32, sb: u32) -> u32 {
  if ((wb & 0x7fffffffu) == 0u) { return 0u; }
  let a = mant(wb);
  let b = mant(sb);
  let wm = u32(a.x);
  let sm = u32(b.x);
  let d = a.y - b.y; // |w/s| = (wm/sm)·2^d with wm/sm in (1/2, 2)
  var q: u32;
  if (d >= 8) {
    q = 127u;
  } else if (d <= -2) {
    q = 0u;
  } else if (d == -1) {
    q = select(0u, 1u, wm >= sm);
  } else {
    let num = wm << u32(d); // < 2^31
    q = num / sm;
    let r = num - q * sm;
    if (2u * r >= sm) { q = q + 1u; }
    q = min(q, 127u);
  }
  if ((wb >> 31u) == 1u) { return (256u - q) & 0xffu; }
  return q;
}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let t = gid.x;
  let e0 = t * 4u;
  if (e0 >= p.n) { return; }
  var word = 0u;
  for (var b = 0u; b < 4u; b = b + 1u) {
    let e = e0 + b;
    if (e < p.n) {
      word = word | (quant(w[e], scales[e % p.cols]) << (8u * b));
    }
  }
  out[t] = word;
}
`;
