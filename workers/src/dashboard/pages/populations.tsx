/**
 * @module
 * Populations: each population's privacy budget, ε spent and left (the edge's ledger, as
 * `GET /v1/populations/:name/privacy` serves it) and ε over its charged rounds against the budget. No device counts.
 */
import type { FC } from "hono/jsx";
import type { PopulationPrivacyStatus } from "@fedge/protocol";
import type { Bindings } from "../../env.ts";
import { listModels } from "../../registry/index.ts";
import { roundsStub } from "../../durable-objects/round-coordinator/index.ts";
import { EpsilonChart } from "../charts.tsx";
import { epsilonSeries } from "../epsilon-series.ts";
import { Page, real } from "../layout.tsx";
import type { DashboardSession } from "../session.ts";

/** Every model in the registry is a population that may train. */
export async function loadPopulations(env: Bindings): Promise<PopulationPrivacyStatus[]> {
  const models = await listModels(env);
  return Promise.all(models.map((m) => roundsStub(env, m.name).privacyStatus(m.name)));
}

const Population: FC<{ status: PopulationPrivacyStatus }> = ({ status }) => {
  const series = epsilonSeries(status);
  return (
    <section class="card population" id={`population-${status.model}`} data-population={status.model}>
      <h2>{status.model}</h2>
      {status.budget === null ? (
        <p class="muted">
          No privacy budget set: only rounds without DP (privacy mode none) can run, and no ε is accounted.
        </p>
      ) : (
        <>
          <div class="stats">
            <div>
              <span class="muted">ε spent</span>
              <b class="epsilon-spent">{real(status.epsilon_spent)}</b>
            </div>
            <div>
              <span class="muted">budget ε</span>
              <b>{real(status.budget.epsilon)}</b>
            </div>
            <div>
              <span class="muted">ε left</span>
              <b>{real(status.epsilon_remaining)}</b>
            </div>
            <div>
              <span class="muted">δ</span>
              <b>{status.budget.delta.toExponential(0)}</b>
            </div>
            <div>
              <span class="muted">accountant</span>
              <b>{status.accountant.toUpperCase()}</b>
            </div>
            <div>
              <span class="muted">charged rounds</span>
              <b>{status.rounds.length}</b>
            </div>
          </div>
          {series.length > 0 ? (
            <EpsilonChart population={status.model} series={series} budget={status.budget.epsilon} />
          ) : (
            <p class="muted">No round charged yet.</p>
          )}
        </>
      )}
    </section>
  );
};

export const PopulationsPage: FC<{ session: DashboardSession; populations: PopulationPrivacyStatus[] }> = (props) => (
  <Page title="Populations" current="/dashboard" session={props.session}>
    <p class="muted">
      ε spent against each population's budget after every charged round, as the edge's ledger accounts it (the public{" "}
      <code>/v1/populations/&lt;name&gt;/privacy</code>).
    </p>
    {props.populations.length === 0 && <p>No population yet: upload a model version to start one.</p>}
    {props.populations.map((p) => (
      <Population status={p} />
    ))}
  </Page>
);
