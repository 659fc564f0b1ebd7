export * from "./update-codec.ts";
export * from "./errors.ts";
export * from "./quantize.ts";
export {
  verifyUpdateSignature,
  verifyUpdateSignatureAsync,
  type VerifyUpdateSignatureAsyncOptions,
} from "./signature.ts";
