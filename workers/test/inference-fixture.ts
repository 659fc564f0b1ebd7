/**
 * Shared by the Node-side global setup (which computes the expected outputs with onnxruntime-node) and the
 * workerd tests (which upload the same ONNX bytes and compare): a deterministic 784→64→10 MLP and inputs.
 * Deterministic values come from a fixed integer hash (tests need reproducible numbers, not randomness).
 */
import type { MlpParams } from "@fedge/ml";

export interface InferenceFixture {
  /** base64 of the ONNX files. */
  int8Onnx: string;
  fp32Onnx: string;
  /** `batch × 784` inputs. */
  inputs: number[][];
  /** onnxruntime-node 1 thread outputs of each file on `inputs`. */
  expectedInt8: number[][];
  expectedFp32: number[][];
}

declare module "vitest" {
  export interface ProvidedContext {
    inferenceFixture: InferenceFixture;
  }
}

/** A value in [-1, 1) from an integer (splitmix-style hash). */
export function hashUnit(i: number, salt: number): number {
  let x = (Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(salt + 7, 0x85ebca6b)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return x / 2 ** 31 - 1;
}

export function fixtureParams(): MlpParams {
  const hidden = 64;
  const w1 = new Float32Array(784 * hidden).map((_, i) => hashUnit(i, 1) * 0.08);
  const b1 = new Float32Array(hidden).map((_, i) => hashUnit(i, 2) * 0.05);
  const w2 = new Float32Array(hidden * 10).map((_, i) => hashUnit(i, 3) * 0.3);
  const b2 = new Float32Array(10).map((_, i) => hashUnit(i, 4) * 0.05);
  return {
    layers: [
      { inFeatures: 784, outFeatures: hidden, weight: w1, bias: b1, activation: "relu" },
      { inFeatures: hidden, outFeatures: 10, weight: w2, bias: b2, activation: "none" },
    ],
  };
}

/** `batch` inputs with pixels in [0, 1]. */
export function fixtureInputs(batch: number): number[][] {
  return Array.from({ length: batch }, (_, r) =>
    Array.from({ length: 784 }, (_, c) => Math.fround((hashUnit(r * 784 + c, 9) + 1) / 2)),
  );
}

export function toB64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]!);
  return btoa(bin);
}

export function fromB64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The built CNN and text transformer (base64), fixed held-out inputs and onnxruntime-node's exact outputs. */
export interface SeedModelsFixture {
  cnn: {
    fp32: string;
    int8: string;
    /** `fedge quantize --weights asymmetric --calibration` output: uint8 QuantizeLinear/DequantizeLinear activations. */
    staticInt8: string;
    expectedStaticInt8: Record<string, number[]>;
    /** 8 MNIST test digits, row-major [8, 1, 28, 28]. */
    images: number[];
    labels: number[];
    /** Output name → row-major values. */
    expectedFp32: Record<string, number[]>;
    expectedInt8: Record<string, number[]>;
  };
  text: {
    fp32: string;
    int8: string;
    /** 8 test sentences, row-major [8, len]. */
    ids: number[];
    mask: number[];
    len: number;
    labels: number[];
    expectedFp32: Record<string, number[]>;
    expectedInt8: Record<string, number[]>;
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    seedModels: SeedModelsFixture;
  }
}
