/**
 * @module
 * @fedge/client: the fedge SDK for browsers, Node and React Native.
 *
 * The core (this entry) holds the HTTP transport, typed errors, retries, storage, the offline queue, device identity
 * and remote predict. On-device training (`participate`) and onnxruntime (`predictLocal`) load lazily on first use.
 */
export {
  FedgeClient,
  type FedgeClientOptions,
  type PredictResult,
  type PredictOptions,
  type DeviceIdentity,
  type ParticipateOptions,
  type ParticipateResult,
} from "./client.ts";
export * from "./core/errors.ts";
export type { RequestOptions } from "./internal/transport.ts";
export type { RandomSource } from "./internal/platform/platform.ts";
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
export { UploadQueue, type QueuedUpdate, type FlushResult, type DropReason } from "./queue/queue.ts";
export type { LoadedModel, OrtLike } from "./model/model.ts";
export type { UpdateStats } from "./participate/build-update.ts";
export {
  localReportEpsilon,
  classicGaussianEpsilon,
  type LocalEpsilonOptions,
  type Neighbouring,
} from "@fedge/privacy";
