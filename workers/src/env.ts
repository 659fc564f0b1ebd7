/**
 * @module
 * The one `AppEnv` generic carried by the whole Hono app. Bindings come from the generated
 * `worker-configuration.d.ts` (`npm run types`); secrets live in `.dev.vars` locally and are added here.
 */
export type Bindings = Env & {
  /** Admin bearer token (aggregator and operators). */
  FEDGE_ADMIN_TOKEN?: string;
  /** Local development API key seeded by the bootstrap. */
  FEDGE_DEV_API_KEY?: string;
  /** Aggregator Ed25519 public key(s), base64url, comma-separated (see middleware/aggregator-signature). */
  FEDGE_AGGREGATOR_PUBLIC_KEY?: string;
  /**
   * The edge's own Ed25519 seed (32 bytes, base64url) that signs check-in receipts; its public key is served at
   * `GET /.well-known/fedge-edge-key`. Written to `.dev.vars` by the bootstrap, put by `npm run provision`.
   */
  FEDGE_EDGE_SIGNING_KEY?: string;
  /** Active devices one API key may register unless an admin set its quota. @default 100000 */
  FEDGE_DEVICE_QUOTA_PER_KEY?: string;
  /** Update uploads per minute from one client address, per isolate (ip-rate-limit.ts). @default 3000 */
  FEDGE_UPLOADS_PER_MINUTE_PER_IP?: string;
  /** Failed credentials per minute from one client address before it is answered 429, per isolate. @default 60 */
  FEDGE_AUTH_FAILURES_PER_MINUTE_PER_IP?: string;
  /** Days the payloads of a closed round are kept, from its close, before they are deleted (metadata stays). @default 7 */
  FEDGE_UPDATE_RETENTION_DAYS?: string;
};

export type AppEnv = {
  Bindings: Bindings;
  Variables: {
    requestId: string;
  };
};
