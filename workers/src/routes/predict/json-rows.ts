/**
 * @module
 * A single-pass reader for the common JSON predict body, `{"inputs": [[n, n, …], …]}`, straight from the request
 * bytes into the float32 batch: no UTF-8 decoding, no `JSON.parse`, no array of doubles to copy afterwards (those three
 * were most of the difference between a JSON and a binary predict at batch 32; `npm run bench`, inference suite).
 *
 * It accepts a strict subset of JSON: one object whose only key is `"inputs"` spelled without escapes, a non-empty
 * array of non-empty, equally long arrays of JSON numbers, at most `MAX_PREDICT_BATCH` rows, ASCII whitespace
 * anywhere JSON allows it. For anything else it returns `null` and the caller parses the body with `JSON.parse` and
 * checks it with `checkJsonBody`, so every malformed or unusual body gets exactly the answer it got before (the
 * same 4xx, the same message); a body this reader takes gives the same `Float32Array` `JSON.parse` would have led to.
 *
 * Numbers: the values end up in a `Float32Array`, i.e. fround(double(x)), where double(x) is the correctly rounded
 * double `JSON.parse` gives. With the decimal x = M·10^e (M its significant digits as an integer):
 * - M < 10^15 and |e| ≤ 22: M and 10^|e| are exact doubles, so one IEEE multiplication or division IS double(x)
 *   (Clinger, "How to read floating point numbers accurately", PLDI 1990, the fast path);
 * - 15 < digits ≤ 19 and |e| ≤ 22: M ≈ hi·10^r + lo and x ≈ M·10^e in three roundings, so the double v is within
 *   4·2⁻⁵³ relative of double(x); when fround(v·(1 − 2⁻⁴⁹)) = fround(v·(1 + 2⁻⁴⁹)), fround is constant on an interval
 *   holding double(x) (fround is monotonic), so that value is fround(double(x)) exactly;
 * - otherwise (more digits, a large exponent, or an interval straddling a float32 rounding boundary): `Number` of the
 *   number's text, the engine's correctly rounded conversion.
 * A number whose double is not finite (`1e999`), or whose float32 is not (`3.5e38`), sends the whole body to the
 * general path, which answers `non_finite` or `out_of_range` with the number's index.
 */
import { MAX_PREDICT_BATCH } from "@fedge/protocol";
import type { CheckedJsonBody } from "./decode.ts";

const POW10 = [
  1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
  1e21, 1e22,
];
/** Digits of M kept exact in `hi` (10^15 < 2^53). */
const EXACT_DIGITS = 15;
/** Digits of M read into `hi·10^r + lo` at most; longer mantissas take the engine's conversion. */
const MAX_DIGITS = 19;
const BELOW = 1 - 2 ** -49;
const ABOVE = 1 + 2 ** -49;

/** ASCII codes. */
const C_TAB = 9;
const C_LF = 10;
const C_CR = 13;
const C_SPACE = 32;
const C_QUOTE = 34;
const C_PLUS = 43;
const C_COMMA = 44;
const C_MINUS = 45;
const C_DOT = 46;
const C_ZERO = 48;
const C_NINE = 57;
const C_COLON = 58;
const C_E = 69;
const C_OPEN = 91;
const C_CLOSE = 93;
const C_LOWER_E = 101;
const C_OPEN_BRACE = 123;
const C_CLOSE_BRACE = 125;

/** `"inputs"`, quotes included. */
const INPUTS_KEY = [C_QUOTE, 105, 110, 112, 117, 116, 115, C_QUOTE];

function isSpace(c: number): boolean {
  return c === C_SPACE || c === C_LF || c === C_CR || c === C_TAB;
}

/** The engine's conversion of the ASCII number text `b[start, end)`. */
function slowNumber(b: Uint8Array, start: number, end: number): number {
  let s = "";
  for (let i = start; i < end; i++) s += String.fromCharCode(b[i]!);
  return Number(s);
}

/**
 * The rows of a `{"inputs": number[][]}` body as a checked body (see the module header), or `null` when the body is
 * not in the subset this reader takes (the caller then uses `JSON.parse` + `checkJsonBody`).
 */
export function readJsonRows(b: Uint8Array): Extract<CheckedJsonBody, { kind: "rows" }> | null {
  const n = b.length;
  let p = 0;
  while (p < n && isSpace(b[p]!)) p++;
  if (b[p] !== C_OPEN_BRACE) return null;
  p++;
  while (p < n && isSpace(b[p]!)) p++;
  for (let k = 0; k < INPUTS_KEY.length; k++) if (b[p + k] !== INPUTS_KEY[k]) return null;
  p += INPUTS_KEY.length;
  while (p < n && isSpace(b[p]!)) p++;
  if (b[p] !== C_COLON) return null;
  p++;
  while (p < n && isSpace(b[p]!)) p++;
  if (b[p] !== C_OPEN) return null;
  p++;
  while (p < n && isSpace(b[p]!)) p++;

  let data = new Float32Array(1024);
  let used = 0;
  let width = -1;
  let batch = 0;
  for (;;) {
    // One row.
    if (b[p] !== C_OPEN) return null;
    const rowStart = p;
    p++;
    while (p < n && isSpace(b[p]!)) p++;
    if (b[p] === C_CLOSE) return null; // an empty row: the general path explains it
    let count = 0;
    for (;;) {
      const start = p;
      let c = b[p];
      const neg = c === C_MINUS;
      if (neg) c = b[++p];
      let hi = 0;
      let lo = 0;
      let r = 0;
      let digits = 0; // significant digits (from the first non-zero one)
      let frac = 0; // digits after the point
      if (c === C_ZERO) {
        c = b[++p];
      } else if (c !== undefined && c > C_ZERO && c <= C_NINE) {
        do {
          if (digits < EXACT_DIGITS) hi = hi * 10 + (c - C_ZERO);
          else if (digits < MAX_DIGITS) {
            lo = lo * 10 + (c - C_ZERO);
            r++;
          }
          digits++;
          c = b[++p];
        } while (c !== undefined && c >= C_ZERO && c <= C_NINE);
      } else return null;
      if (c === C_DOT) {
        c = b[++p];
        if (c === undefined || c < C_ZERO || c > C_NINE) return null;
        do {
          if (digits > 0 || c !== C_ZERO) {
            if (digits < EXACT_DIGITS) hi = hi * 10 + (c - C_ZERO);
            else if (digits < MAX_DIGITS) {
              lo = lo * 10 + (c - C_ZERO);
              r++;
            }
            digits++;
          }
          if (digits <= MAX_DIGITS) frac++;
          c = b[++p];
        } while (c !== undefined && c >= C_ZERO && c <= C_NINE);
      }
      let exp = 0;
      if (c === C_LOWER_E || c === C_E) {
        c = b[++p];
        let expNeg = false;
        if (c === C_PLUS || c === C_MINUS) {
          expNeg = c === C_MINUS;
          c = b[++p];
        }
        if (c === undefined || c < C_ZERO || c > C_NINE) return null;
        do {
          if (exp < 100_000) exp = exp * 10 + (c - C_ZERO);
          c = b[++p];
        } while (c !== undefined && c >= C_ZERO && c <= C_NINE);
        if (expNeg) exp = -exp;
      }
      // M holds every significant digit when digits ≤ MAX_DIGITS (else the engine converts the text).
      const e10 = exp - frac;
      let v: number;
      if (digits === 0) {
        v = 0;
      } else if (digits > MAX_DIGITS || e10 < -22 || e10 > 22) {
        v = slowNumber(b, neg ? start + 1 : start, p);
      } else if (r === 0) {
        v = e10 < 0 ? hi / POW10[-e10]! : hi * POW10[e10]!;
      } else {
        const m = hi * POW10[r]! + lo;
        const approx = e10 < 0 ? m / POW10[-e10]! : m * POW10[e10]!;
        const below = Math.fround(approx * BELOW);
        // past float32's range both bounds are ±∞ while the double may be finite: the engine's conversion decides
        v =
          below === Math.fround(approx * ABOVE) && below - below === 0
            ? below
            : slowNumber(b, neg ? start + 1 : start, p);
      }
      const f = Math.fround(neg ? -v : v);
      // not finite as a double (non_finite) or as a float32 (out_of_range): the general path names the index
      if (f - f !== 0) return null;
      if (used === data.length) {
        const grown = new Float32Array(data.length * 2);
        grown.set(data);
        data = grown;
      }
      data[used++] = f;
      count++;
      while (p < n && isSpace(b[p]!)) p++;
      c = b[p];
      if (c === C_COMMA) {
        p++;
        while (p < n && isSpace(b[p]!)) p++;
        continue;
      }
      if (c === C_CLOSE) break;
      return null;
    }
    p++;
    if (width < 0) {
      width = count;
      // Room for as many rows as the rest of the body would hold at this row's length, at most the batch cap.
      const rows = Math.min(MAX_PREDICT_BATCH, Math.ceil(n / (p - rowStart)) + 1);
      if (rows * width > data.length) {
        const sized = new Float32Array(rows * width);
        sized.set(data.subarray(0, used));
        data = sized;
      }
    } else if (count !== width) return null;
    batch++;
    if (batch > MAX_PREDICT_BATCH) return null;
    while (p < n && isSpace(b[p]!)) p++;
    const c = b[p];
    if (c === C_COMMA) {
      p++;
      while (p < n && isSpace(b[p]!)) p++;
      continue;
    }
    if (c === C_CLOSE) break;
    return null;
  }
  p++;
  while (p < n && isSpace(b[p]!)) p++;
  if (b[p] !== C_CLOSE_BRACE) return null;
  p++;
  while (p < n && isSpace(b[p]!)) p++;
  if (p !== n) return null;
  return {
    kind: "rows",
    batch,
    width,
    raggedRow: -1,
    raggedLength: 0,
    data: used === data.length ? data : data.subarray(0, used),
  };
}
