/**
 * @module
 * Internal constants of the update codec shared by the encoder (`encode.ts`) and the decoder (`update-codec.ts`); not
 * exported from the package. The byte table is in the header of `update-codec.ts`.
 */
export const DTYPE_CODES = { float32: 1, int8: 2 } as const;
/** Clip-bit field values: not reported, reported b = 0 (b = 1 is `CLIP_BIT_PRESENT | 1`). */
export const CLIP_BIT_ABSENT = 0;
export const CLIP_BIT_PRESENT = 2;
export const U32_MAX = 0xffffffff;
export const F32_MAX = 3.4028234663852886e38;
export const ID_PATTERN = /^[A-Za-z0-9_-]+$/;
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
