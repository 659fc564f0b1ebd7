export * from "./quantize.ts";
