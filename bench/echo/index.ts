/**
 * @module
 * The echo worker (baselines for the ingestion benchmark): reads the whole request body and answers with its length in a
 * JSON body about the size of an update receipt. `?store=do` also writes the bytes durably into a SQLite-backed Durable
 * Object (one of 16, as fedge's UpdateStore shards took payloads before its coordinator stored them) in one transaction
 * before answering; `?store=r2` puts them into R2 once (a fresh key each time). `/v1/health` answers so `startLocalEdge` can wait for it.
 */
import { DurableObject } from "cloudflare:workers";

/** The bindings, typed structurally (bench/ is type-checked without the generated Workers types). */
interface EchoEnv {
  SINK: { put(key: string, value: Uint8Array): Promise<unknown> };
  DURABLE_SINK: { getByName(name: string): { put(key: string, bytes: Uint8Array): Promise<void> } };
}

const SHARDS = 16;

/** A durable sink: stores each body as one row, as fedge's coordinator does for an update of up to 1 MiB. */
export class DurableSink extends DurableObject {
  private tableReady = false;

  async put(key: string, bytes: Uint8Array): Promise<void> {
    const sql = this.ctx.storage.sql;
    if (!this.tableReady) {
      sql.exec("CREATE TABLE IF NOT EXISTS sink (key TEXT PRIMARY KEY, data BLOB NOT NULL)");
      this.tableReady = true;
    }
    // One transaction, as fedge's coordinator writes a payload with its commit.
    this.ctx.storage.transactionSync(() => sql.exec("INSERT INTO sink (key, data) VALUES (?, ?)", key, bytes));
  }
}

export default {
  async fetch(request: Request, env: EchoEnv): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/v1/health") return Response.json({ status: "ok", service: "echo" });
    const body = new Uint8Array(await request.arrayBuffer());
    const store = url.searchParams.get("store");
    const key = crypto.randomUUID();
    if (store === "r2") await env.SINK.put(`sink/${key}`, body);
    if (store === "do") {
      const shard = crypto.getRandomValues(new Uint8Array(1))[0]! % SHARDS;
      await env.DURABLE_SINK.getByName(`shard:${shard}`).put(key, body);
    }
    return Response.json(
      { received_bytes: body.byteLength, padding: "x".repeat(160) },
      { status: request.method === "POST" ? 201 : 200 },
    );
  },
};
