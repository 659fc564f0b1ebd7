/**
 * @module
 * @fedge/client: the fedge SDK for browsers, Node and React Native.
 *
 * The core (this entry) holds the HTTP transport, typed errors, retries, storage, the offline queue, device identity
 * and remote predict. Model download (`loadModel`), on-device training (`participate`) and onnxruntime (`predictLocal`)
 * load lazily on first use. The ε of a local-mode report (`localReportEpsilon`, `classicGaussianEpsilon`) is the
 * subpath `@fedge/client/privacy`.
 */
export {
  FedgeClient,
  type FedgeClientOptions,
  type PredictResult,
  type PredictOptions,
  type InferOptions,
  type InferResult,
  type DeviceIdentity,
  type ParticipateOptions,
  type ParticipateResult,
  type SecAggEncoder,
  type SecureAggregationStats,
  type PrivacyPolicy,
  type ResolvedPrivacyPolicy,
} from "./client.ts";
export { DEFAULT_PRIVACY_POLICY } from "./validate.ts";
export { plainModularEncoder } from "./modular-encoder.ts";
export * from "./core/errors.ts";
export type { RequestOptions } from "./internal/transport.ts";
export type { RandomSource } from "./internal/platform.ts";
export { backoffDelayMs, isRetryableStatus } from "./internal/retry.ts";
export {
  memoryStorage,
  hasKeyStore,
  type CryptoKeyStore,
  type FedgeStorage,
  type QueueStorage,
} from "./storage/storage.ts";
export { fileStorage, type FileStorageOptions } from "./storage/file-storage.ts";
export { indexedDbStorage, type IndexedDbStorageOptions } from "./storage/indexeddb-storage.ts";
export { asyncStorage, type AsyncStorageLike, type AsyncStorageOptions } from "./storage/async-storage.ts";
export { UploadQueue, type UploadQueueOptions, type QueuedUpdate, type FlushResult, type DropReason } from "./queue.ts";
export type { LoadedModel, OrtLike, OrtSession, OrtTensor } from "./model.ts";
export type { InferInputs, InferTensor, Tensor, TensorArray, TensorDtype } from "./inference/tensors.ts";
export type { UpdateStats } from "./build-update.ts";
export type { PopulationPrivacySpend } from "./device-accounting.ts";
export type { SignedCheckinReceipt, CheckinReceiptBody } from "@fedge/protocol/receipt";
