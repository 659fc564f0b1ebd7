/**
 * Corruption of every byte region: a changed byte must be rejected with the right typed reason, or (where the change still
 * parses, e.g. in ids, nonce, scale or payload) by the signature. Never may a changed body decode to accepted content.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UpdateCodecError, type UpdateCodecErrorReason } from "./errors.ts";
import { FIXTURE_SEED, FIXTURES } from "./fixtures/fixtures.ts";
import nacl from "tweetnacl";
import { fieldsArb, layout, TEST_KEY, type Region } from "./test-helpers.ts";
import { decodeUpdate, decodeVerifiedUpdate, type UpdateFields } from "./update-codec.ts";
import { encodeUpdate } from "./encode.ts";

/** When a length or rank changes, every later field is read at the wrong place: any structural reason may follow. */
const SHIFTED: UpdateCodecErrorReason[] = [
  "truncated",
  "bad_field",
  "shape_mismatch",
  "length_mismatch",
  "trailing_bytes",
  "non_finite",
  "bad_signature",
];

const ALLOWED: Record<Region, (dtype: "float32" | "int8") => UpdateCodecErrorReason[]> = {
  magic: () => ["bad_magic"],
  version: () => ["unsupported_version"],
  // 1 ↔ 2 swaps float32 and int8: the scale is then read from where the padding or payload was.
  dtype: () => ["bad_dtype", ...SHIFTED],
  flags: () => ["bad_flags"],
  // 0 ↔ 2 ↔ 3 still parse (the signature covers the field), anything else is refused.
  clipBit: () => ["bad_field", "bad_signature"],
  roundIdLength: () => SHIFTED,
  roundId: () => ["bad_field", "bad_signature"],
  deviceIdLength: () => SHIFTED,
  deviceId: () => ["bad_field", "bad_signature"],
  nonce: () => ["bad_signature"],
  rank: () => SHIFTED,
  dims: () => ["bad_field", "shape_mismatch"],
  count: () => ["shape_mismatch"],
  scale: () => ["non_finite", "bad_field", "bad_signature"],
  padding: () => ["bad_field"],
  payload: (dtype) => (dtype === "float32" ? ["non_finite", "bad_signature"] : ["bad_field", "bad_signature"]),
  signature: () => ["bad_signature"],
};

const REGIONS = Object.keys(ALLOWED) as Region[];

/**
 * Asserts a corrupted body is refused with an allowed reason. The edge decodes without a key first: that gives either a typed
 * error (the same one with a key: structure is checked before the signature), or content whose signature must then fail.
 */
async function expectRefused(
  corrupted: Uint8Array,
  region: Region,
  dtype: "float32" | "int8",
  publicKey: Uint8Array,
): Promise<void> {
  const allowed = ALLOWED[region](dtype);
  const reasonOf = async (run: () => unknown): Promise<UpdateCodecErrorReason | "accepted"> => {
    try {
      await run();
      return "accepted";
    } catch (e) {
      if (e instanceof UpdateCodecError) return e.reason;
      throw e;
    }
  };
  const keyless = await reasonOf(() => decodeUpdate(corrupted));
  if (keyless === "accepted") {
    expect(allowed, `region ${region} parsed after corruption`).toContain("bad_signature");
    expect(await reasonOf(() => decodeVerifiedUpdate(corrupted, publicKey))).toBe("bad_signature");
  } else {
    expect(allowed, `region ${region}`).toContain(keyless);
    expect(await reasonOf(() => decodeVerifiedUpdate(corrupted, publicKey))).toBe(keyless);
  }
}

describe("random corruption of each byte region", () => {
  for (const region of REGIONS) {
    it(`${region}: any changed byte is refused with an allowed reason`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fieldsArb(),
          fc.nat(),
          fc.integer({ min: 1, max: 255 }),
          async (fields: UpdateFields, pick: number, mask: number) => {
            const [start, end] = layout(fields)[region];
            fc.pre(end > start); // no scale for float32; padding may be empty
            const bytes = await encodeUpdate(fields, TEST_KEY.secretKey);
            const at = start + (pick % (end - start));
            bytes[at]! ^= mask;
            await expectRefused(bytes, region, fields.payload.dtype, TEST_KEY.publicKey);
          },
        ),
        { numRuns: 40 },
      );
    });
  }
});

describe("exhaustive single-byte corruption of the fixtures", () => {
  const key = nacl.sign.keyPair.fromSeed(FIXTURE_SEED);
  for (const [name, fields] of Object.entries(FIXTURES)) {
    it(`${name}: every byte, four masks`, async () => {
      const bytes = await encodeUpdate(fields, key.secretKey);
      const l = layout(fields);
      const regionOf = (i: number) => REGIONS.find((r) => i >= l[r][0] && i < l[r][1])!;
      let checked = 0;
      for (let i = 0; i < bytes.length; i++) {
        for (const mask of [0x01, 0x80, 0xff, 0x5a]) {
          const b = bytes.slice();
          b[i]! ^= mask;
          await expectRefused(b, regionOf(i), fields.payload.dtype, key.publicKey);
          checked++;
        }
      }
      expect(checked).toBe(bytes.length * 4);
    });
  }
});
