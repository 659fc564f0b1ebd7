/**
 * @module
 * Rounds: each population's latest rounds with their state, privacy mode, q, C and z. Exact device counts of a DP round
 * (checked in, selected, accepted) are never shown: they are exactly what the round's noise protects, and the edge holds
 * no noised release of them. Only rounds in privacy mode `none` show their counts.
 */
import type { FC } from "hono/jsx";
import { isDpMode, type RoundStatus } from "@fedge/protocol";
import type { Bindings } from "../../env.ts";
import { listModels } from "../../registry/index.ts";
import { roundsStub } from "../../durable-objects/round-coordinator/index.ts";
import { Page, real, when } from "../layout.tsx";
import type { DashboardSession } from "../session.ts";

/** Rounds per population on the page. */
export const ROUNDS_PER_POPULATION = 20;

/** What the page may show of a round: its counts only outside DP. */
export type RoundRow = Omit<RoundStatus, "checked_in" | "selected" | "accepted"> & {
  counts: { checked_in: number; selected: number; accepted: number } | null;
};

/** Drops a DP round's exact counts before anything renders them. */
export function publicRound(r: RoundStatus): RoundRow {
  const { checked_in, selected, accepted, ...rest } = r;
  return { ...rest, counts: isDpMode(r.params.privacy_mode) ? null : { checked_in, selected, accepted } };
}

export async function loadRounds(env: Bindings, now: number): Promise<{ model: string; rounds: RoundRow[] }[]> {
  const models = await listModels(env);
  return Promise.all(
    models.map(async (m) => ({
      model: m.name,
      rounds: (await roundsStub(env, m.name).listRounds(ROUNDS_PER_POPULATION, now)).map(publicRound),
    })),
  );
}

const StateBadge: FC<{ state: RoundStatus["state"] }> = ({ state }) => (
  <span class={`badge ${state === "aggregated" ? "ok" : state === "closed" ? "" : "warn"}`}>{state}</span>
);

const Counts: FC<{ round: RoundRow }> = ({ round }) =>
  round.counts === null ? (
    <span class="muted" title="Exact counts of a DP round are never shown; the edge holds no noised release of them.">
      DP: not released
    </span>
  ) : (
    <span>
      {round.counts.checked_in} checked in · {round.counts.selected} selected · {round.counts.accepted} accepted
    </span>
  );

export const RoundsPage: FC<{ session: DashboardSession; populations: { model: string; rounds: RoundRow[] }[] }> = (
  props,
) => (
  <Page title="Rounds" current="/dashboard/rounds" session={props.session}>
    {props.populations.every((p) => p.rounds.length === 0) && <p>No round yet.</p>}
    {props.populations
      .filter((p) => p.rounds.length > 0)
      .map((p) => (
        <section class="card" data-population={p.model}>
          <h2>{p.model}</h2>
          <table>
            <thead>
              <tr>
                <th>Round</th>
                <th>State</th>
                <th>Mode</th>
                <th class="num">q</th>
                <th class="num">C</th>
                <th class="num">z</th>
                <th class="num">σ_b</th>
                <th>Opened</th>
                <th>Closed</th>
                <th>Counts</th>
              </tr>
            </thead>
            <tbody>
              {p.rounds.map((r) => (
                <tr class="round" data-round={r.round_id}>
                  <td class="mono">{r.round_id}</td>
                  <td>
                    <StateBadge state={r.state} />
                  </td>
                  <td>{r.params.privacy_mode}</td>
                  <td class="num">{real(r.params.sampling_rate)}</td>
                  <td class="num">{r.params.clip_norm === undefined ? "—" : real(r.params.clip_norm)}</td>
                  <td class="num">
                    {r.params.mechanism ? real(r.params.mechanism.noise_multiplier) : "—"}
                    {r.params.mechanism?.clip_rule === "adaptive" && <span class="muted"> (adaptive C)</span>}
                  </td>
                  <td class="num">
                    {r.params.mechanism?.count_noise_std === undefined ? "—" : real(r.params.mechanism.count_noise_std)}
                  </td>
                  <td>{when(r.opened_at)}</td>
                  <td>{when(r.closed_at)}</td>
                  <td>
                    <Counts round={r} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ))}
  </Page>
);
