/**
 * @module
 * The edge the cross-package tests start: a fresh `wrangler dev` whose state lives in a new temporary folder, with its
 * admin token and the aggregator key it trusts, and the two admin clients a test drives it with (the operator's admin
 * token, the aggregator's signature). `stop()` stops the edge and removes the folder.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { toBase64Url } from "@fedge/protocol";
import { loadOrCreateSigningKey, type SigningKey } from "fedge/export";
import { EdgeAdminClient } from "fedge/edge";
import { startLocalEdge, type LocalEdge } from "@fedge/local-edge";

export interface TestEdgeOptions {
  port: number;
  /** Prefix of the temporary folder (`fedge-<name>-`). */
  name: string;
  adminToken: string;
  /**
   * Where the aggregator's key file is made, relative to the folder (e.g. `fedge aggregate`'s default key file of a
   * checkpoint directory, for a test that runs the CLI). @default "aggregator-key.json"
   */
  aggregatorKeyFile?: string;
  /** More `--var` bindings of the edge (the admin token and the trusted aggregator key are set already). */
  vars?: Record<string, string>;
}

export interface TestEdge {
  /** The temporary folder: the edge's state (`edge-state/`), key and token files, anything the test writes. */
  dir: string;
  edge: LocalEdge;
  /** The aggregator key the edge trusts (`FEDGE_AGGREGATOR_PUBLIC_KEY`), and its file (`--signing-key`). */
  key: SigningKey;
  keyFile: string;
  /** `<dir>/admin-token` (mode 0600, for `--admin-token-file`). */
  tokenFile: string;
  /** The operator: admin token. */
  operator: EdgeAdminClient;
  /** The aggregator: its signed requests. */
  admin: EdgeAdminClient;
  stop(): Promise<void>;
}

export async function startTestEdge(o: TestEdgeOptions): Promise<TestEdge> {
  const dir = await mkdtemp(path.join(tmpdir(), `fedge-${o.name}-`));
  let edge: LocalEdge | undefined;
  try {
    const keyFile = path.join(dir, o.aggregatorKeyFile ?? "aggregator-key.json");
    const key = await loadOrCreateSigningKey(keyFile);
    const tokenFile = path.join(dir, "admin-token");
    await writeFile(tokenFile, `${o.adminToken}\n`, { mode: 0o600 });
    edge = await startLocalEdge({
      port: o.port,
      persistTo: path.join(dir, "edge-state"),
      vars: {
        FEDGE_ADMIN_TOKEN: o.adminToken,
        FEDGE_AGGREGATOR_PUBLIC_KEY: toBase64Url(key.publicKey),
        ...o.vars,
      },
      readyTimeoutMs: 120_000,
    });
    const started = edge;
    return {
      dir,
      edge: started,
      key,
      keyFile,
      tokenFile,
      operator: new EdgeAdminClient({ baseUrl: started.url, adminToken: o.adminToken }),
      admin: new EdgeAdminClient({ baseUrl: started.url, signingKey: key.secretKey }),
      async stop() {
        await started.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await edge?.stop();
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}
