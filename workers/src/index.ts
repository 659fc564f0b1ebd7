/**
 * @module
 * Worker entry: the Hono app plus the Durable Object classes wrangler binds.
 */
import { createApp } from "./app.ts";
import type { Bindings } from "./env.ts";

export { AccountLedger } from "./durable-objects/account-ledger.ts";
export { RoundCoordinator } from "./durable-objects/round-coordinator/index.ts";
export { DeviceRegistry } from "./durable-objects/device-registry.ts";
export { UpdateStore } from "./durable-objects/update-store.ts";
export { AdminNonces } from "./durable-objects/admin-nonces.ts";
export { SecAggRound } from "./durable-objects/secagg-round.ts";

const app = createApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Bindings>;
