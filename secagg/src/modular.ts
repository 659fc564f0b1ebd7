/**
 * @module
 * Arithmetic on vectors in Z_{2^b}, b ≤ 32, stored as `Uint32Array`. A power-of-two modulus makes reduction a mask and
 * makes the low b bits of a uniform 32-bit word uniform in Z_{2^b}, so masks need no rejection sampling.
 */

/** The largest supported bit width: one value per 32-bit word. */
export const MAX_MODULUS_BITS = 32;

/** The bit mask of Z_{2^b}; throws `RangeError` unless 1 ≤ b ≤ 32. */
export function modulusMask(bits: number): number {
  if (!Number.isInteger(bits) || bits < 1 || bits > MAX_MODULUS_BITS) {
    throw new RangeError(`modulus bits must be an integer in [1, ${MAX_MODULUS_BITS}], got ${bits}`);
  }
  return bits === 32 ? 0xffffffff : 2 ** bits - 1;
}

/** target ← (target + addend) mod 2^b, in place. */
export function addModInto(target: Uint32Array, addend: Uint32Array, bits: number): void {
  checkLengths(target, addend);
  const mask = modulusMask(bits);
  for (let i = 0; i < target.length; i++) target[i] = (target[i]! + addend[i]!) & mask;
}

/** target ← (target − subtrahend) mod 2^b, in place. */
export function subModInto(target: Uint32Array, subtrahend: Uint32Array, bits: number): void {
  checkLengths(target, subtrahend);
  const mask = modulusMask(bits);
  for (let i = 0; i < target.length; i++) target[i] = (target[i]! - subtrahend[i]!) & mask;
}

/** Whether every value of `values` lies in Z_{2^b}. */
export function inModulus(values: Uint32Array, bits: number): boolean {
  const mask = modulusMask(bits);
  if (mask === 0xffffffff) return true;
  for (let i = 0; i < values.length; i++) if (values[i]! > mask) return false;
  return true;
}

function checkLengths(a: Uint32Array, b: Uint32Array): void {
  if (a.length !== b.length) throw new RangeError(`vector lengths differ: ${a.length} and ${b.length}`);
}
