/**
 * @module
 * Byte-array equality for public values (keys). Not constant-time: never use it on secrets.
 */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
