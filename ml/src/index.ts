/**
 * @module
 * @fedge/ml: Model math of fedge: the MLP layout, ONNX read/write and the servable-model check, int8 quantization (per-channel weights, QDQ graphs), on-device training, clipping and evaluation. Pure: runs in Node, workerd and the browser.
 */
export * from "./model-layout/mlp.ts";
export * from "./model-layout/onnx-mlp.ts";
export * from "./onnx/types.ts";
export * from "./onnx/descriptor.ts";
export * from "./onnx/codec.ts";
export * from "./onnx/tensor.ts";
export * from "./onnx/inspect.ts";
export * from "./onnx/graph.ts";
export * from "./onnx/servable.ts";
export * from "./onnx/upload-manifest.ts";
export * from "./quantize/quantize.ts";
export * from "./quantize/per-axis.ts";
export * from "./quantize/qdq.ts";
export * from "./quantize/report.ts";
export * from "./training/dense.ts";
export * from "./training/softmax-cross-entropy.ts";
export * from "./training/mlp.ts";
export * from "./training/init.ts";
export * from "./training/random.ts";
export * from "./training/train.ts";
export * from "./training/evaluate.ts";
export * from "./training/update.ts";
export * from "./training/clip.ts";
export * from "./training/device-update.ts";
export * from "./training/distributed-update.ts";
export * from "./training/validate.ts";
