export {
  NO_ROUND_RETRY_S,
  RoundCoordinator,
  roundsStub,
  type CommitInput,
  type StoredUpdate,
  type UploadPreflight,
  type UploadTarget,
} from "./round-coordinator.ts";
