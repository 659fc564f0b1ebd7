/**
 * The one runtime module the echo worker imports, typed structurally: bench/ is type-checked with Node's types, not the
 * generated Workers types, and the echo worker needs only this much of them.
 */
declare module "cloudflare:workers" {
  interface SqlStorage {
    exec(query: string, ...bindings: unknown[]): unknown;
  }
  export abstract class DurableObject<Env = unknown> {
    protected ctx: { storage: { sql: SqlStorage; transactionSync<T>(fn: () => T): T } };
    protected env: Env;
    constructor(ctx: unknown, env: Env);
  }
}
