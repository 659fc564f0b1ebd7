export * from "./mlp.ts";
export * from "./onnx-mlp.ts";
