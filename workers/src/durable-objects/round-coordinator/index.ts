export {
  RoundCoordinator,
  roundsStub,
  type CommitInput,
  type ShardOpening,
  type ShardReport,
  type StoredUpdate,
} from "./round-coordinator.ts";
export { NO_ROUND_RETRY_S, type UploadPreflight, type UploadTarget } from "./admission.ts";
export { shardStub, splitCursor } from "./shards.ts";
export type { PayloadLocation } from "./payloads.ts";
