/**
 * @module
 * Arithmetic in Z_{2^b} on `Uint32Array`s (b ≤ 32): the contract with secure aggregation, which returns the sum of the
 * devices' encoded vectors mod 2^b. {@link addModulo} is that sum computed in the clear (the in-process simulation and
 * tests); {@link centredValue} reads a residue as the integer in [−2^(b−1), 2^(b−1)) the server decodes.
 */

function checkBits(bits: number): void {
  if (!Number.isSafeInteger(bits) || bits < 1 || bits > 32)
    throw new RangeError(`bits must be in [1, 32], got ${bits}`);
}

/** The residue of the integer `value` (|value| < 2⁵³) in [0, 2^b). */
export function reduceModulo(value: number, bits: number): number {
  const m = 2 ** bits;
  const r = value % m;
  return r < 0 ? r + m : r;
}

/** acc ← (acc + x) mod 2^b, coordinate-wise; both hold residues in [0, 2^b). */
export function addModulo(acc: Uint32Array, x: Uint32Array, bits: number): void {
  checkBits(bits);
  if (!(x instanceof Uint32Array) || x.length !== acc.length) {
    throw new RangeError(`vector of ${x?.length} values, the sum has ${acc.length}`);
  }
  const m = 2 ** bits;
  for (let i = 0; i < acc.length; i++) {
    const xi = x[i]!;
    if (xi >= m) throw new RangeError(`coordinate ${i} (${xi}) is not a residue mod 2^${bits}`);
    const s = acc[i]! + xi; // < 2³³, exact
    acc[i] = s >= m ? s - m : s;
  }
}

/** The residue r ∈ [0, 2^b) as the centred integer in [−2^(b−1), 2^(b−1)). */
export function centredValue(r: number, bits: number): number {
  const half = 2 ** (bits - 1);
  return r >= half ? r - 2 * half : r;
}
