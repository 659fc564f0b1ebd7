/**
 * @module
 * Model versions: every version of every model with its accuracy (the manifest's `evaluation`), size, quantization,
 * ε and the key that signed its manifest, and the buttons that move the serving pointer (promote a version, roll back
 * to the previous one), each a POST with the session's CSRF token.
 */
import type { FC } from "hono/jsx";
import type { ModelIndex, ModelManifest } from "@fedge/protocol";
import type { Bindings } from "../../env.ts";
import { listModels, readIndex, readManifest } from "../../registry/index.ts";
import { isTrustedAggregatorKey } from "../../middleware/aggregator-signature.ts";
import { CsrfField, Page, real, when } from "../layout.tsx";
import type { DashboardSession } from "../session.ts";

export interface VersionRow {
  manifest: ModelManifest | null;
  version: number;
  size_bytes: number;
  created_at: string;
  /** The signer's key, and whether this edge trusts it now; null for an unsigned manifest. */
  signer: { public_key: string; trusted: boolean } | null;
}

export interface ModelRows {
  index: ModelIndex;
  versions: VersionRow[];
}

export async function loadModels(env: Bindings): Promise<ModelRows[]> {
  const models = await listModels(env);
  const rows = await Promise.all(
    models.map(async (m): Promise<ModelRows | null> => {
      const index = await readIndex(env, m.name);
      if (!index) return null;
      const versions = await Promise.all(
        index.versions.map(async (v): Promise<VersionRow> => {
          const manifest = await readManifest(env, m.name, v.version);
          const key = manifest?.aggregator?.public_key;
          return {
            manifest,
            version: v.version,
            size_bytes: v.size_bytes,
            created_at: v.created_at,
            signer: key ? { public_key: key, trusted: await isTrustedAggregatorKey(env, key) } : null,
          };
        }),
      );
      return { index, versions: versions.reverse() };
    }),
  );
  return rows.filter((r): r is ModelRows => r !== null);
}

function size(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

const Signer: FC<{ signer: VersionRow["signer"] }> = ({ signer }) =>
  signer === null ? (
    <span class="muted">unsigned</span>
  ) : (
    <span title={signer.public_key}>
      <code>{signer.public_key.slice(0, 12)}…</code>{" "}
      <span class={`badge ${signer.trusted ? "ok" : "warn"}`}>{signer.trusted ? "trusted" : "not trusted now"}</span>
    </span>
  );

const Model: FC<{ session: DashboardSession; rows: ModelRows }> = ({ session, rows }) => {
  const { index } = rows;
  const previous = index.serving_history.at(-1);
  return (
    <section class="card model" data-model={index.name} data-serving={String(index.serving_version ?? "")}>
      <h2>{index.name}</h2>
      <p>
        Serving:{" "}
        <b class="serving-version">{index.serving_version === null ? "nothing" : `v${index.serving_version}`}</b>
        {previous !== undefined && (
          <form method="post" action={`/dashboard/models/${index.name}/rollback`} class="inline">
            <CsrfField session={session} />{" "}
            <button type="submit" class="danger rollback">
              Roll back to v{previous}
            </button>
          </form>
        )}
      </p>
      <table>
        <thead>
          <tr>
            <th>Version</th>
            <th>Created</th>
            <th class="num">Accuracy</th>
            <th class="num">Size</th>
            <th>Weights</th>
            <th class="num">ε</th>
            <th>Manifest signer</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {rows.versions.map((v) => (
            <tr class="version" data-version={String(v.version)}>
              <td>
                v{v.version} {v.version === index.serving_version && <span class="badge ok">serving</span>}
              </td>
              <td>{when(v.created_at)}</td>
              <td class="num">
                {v.manifest?.evaluation ? `${(v.manifest.evaluation.accuracy * 100).toFixed(1)} %` : "—"}
              </td>
              <td class="num">{size(v.size_bytes)}</td>
              <td>{v.manifest?.quantization.weight_dtype ?? "—"}</td>
              <td class="num">{v.manifest?.privacy ? real(v.manifest.privacy.epsilon) : "—"}</td>
              <td>
                <Signer signer={v.signer} />
              </td>
              <td>
                {v.version !== index.serving_version && (
                  <form method="post" action={`/dashboard/models/${index.name}/promote`} class="inline">
                    <CsrfField session={session} />
                    <input type="hidden" name="version" value={String(v.version)} />
                    <button type="submit" class="promote">
                      Promote
                    </button>
                  </form>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
};

export const ModelsPage: FC<{ session: DashboardSession; models: ModelRows[] }> = (props) => (
  <Page title="Model versions" current="/dashboard/models" session={props.session}>
    {props.models.length === 0 && <p>No model yet.</p>}
    {props.models.map((m) => (
      <Model session={props.session} rows={m} />
    ))}
  </Page>
);
