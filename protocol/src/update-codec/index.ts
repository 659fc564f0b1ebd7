export * from "./update-codec.ts";
export * from "./encode.ts";
export * from "./errors.ts";
export * from "./quantize.ts";
export {
  UPDATE_DIGEST_BYTES,
  UPDATE_SIGNING_CONTEXT,
  digestHex,
  signUpdateBytes,
  updateDigest,
  updateDigestHex,
  updateSigningMessage,
  verifyUpdateSignature,
  type UpdateCryptoOptions,
} from "./signature.ts";
