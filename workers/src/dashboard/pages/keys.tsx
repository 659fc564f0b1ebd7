/**
 * @module
 * API keys: every key in the directory (key-directory.ts) with its tenant, rate limit and state, its metered calls per
 * UTC day over the last `USAGE_DAYS` days as a bar chart, and a revoke button (a POST with the session's CSRF token).
 */
import type { FC } from "hono/jsx";
import type { UsageReport } from "@fedge/protocol";
import type { Bindings } from "../../env.ts";
import { ledgerFor, listKeyIds } from "../../middleware/auth/index.ts";
import { settleUsage } from "../../middleware/metering.ts";
import { utcDay } from "../../durable-objects/account-ledger.ts";
import { UsageChart } from "../charts.tsx";
import { CsrfField, Page, when } from "../layout.tsx";
import type { DashboardSession } from "../session.ts";

/** Days of usage charted per key, today included. */
export const USAGE_DAYS = 14;
const DAY_MS = 86_400_000;

/** `days` with a zero for every day without usage, from `USAGE_DAYS - 1` days before `now` to today (UTC). */
export function dailyCalls(days: UsageReport["days"], now: number): { day: string; calls: number }[] {
  const calls = new Map(days.map((d) => [d.day, d.calls]));
  return Array.from({ length: USAGE_DAYS }, (_, i) => {
    const day = utcDay(now - (USAGE_DAYS - 1 - i) * DAY_MS);
    return { day, calls: calls.get(day) ?? 0 };
  });
}

export async function loadKeys(env: Bindings, now: number): Promise<UsageReport[]> {
  await settleUsage(env);
  const from = utcDay(now - (USAGE_DAYS - 1) * DAY_MS);
  const reports = await Promise.all((await listKeyIds(env)).map((id) => ledgerFor(env, id).usage({ from })));
  const known: UsageReport[] = [];
  for (const r of reports) if (r) known.push(r);
  return known;
}

const Key: FC<{ session: DashboardSession; report: UsageReport; now: number }> = ({ session, report, now }) => {
  const k = report.key;
  const series = dailyCalls(report.days, now);
  return (
    <section class="card api-key" data-key={k.id}>
      <h2>
        {k.name} <code class="muted">{k.id}</code>{" "}
        {k.revoked_at === null ? (
          <span class="badge ok">active</span>
        ) : (
          <span class="badge warn">revoked {when(k.revoked_at)}</span>
        )}
      </h2>
      <div class="stats">
        <div>
          <span class="muted">tenant</span>
          <b>{k.tenant}</b>
        </div>
        <div>
          <span class="muted">rate limit / min</span>
          <b>{k.rate_limit_per_minute}</b>
        </div>
        <div>
          <span class="muted">calls, {USAGE_DAYS} days</span>
          <b class="calls-total">{series.reduce((s, d) => s + d.calls, 0)}</b>
        </div>
        <div>
          <span class="muted">created</span>
          <b>{when(k.created_at)}</b>
        </div>
      </div>
      <UsageChart keyId={k.id} days={series} />
      {k.revoked_at === null && (
        <form method="post" action={`/dashboard/keys/${k.id}/revoke`}>
          <CsrfField session={session} />
          <button type="submit" class="danger revoke-key">
            Revoke key
          </button>
        </form>
      )}
    </section>
  );
};

export const KeysPage: FC<{ session: DashboardSession; reports: UsageReport[]; now: number }> = (props) => (
  <Page title="API keys" current="/dashboard/keys" session={props.session}>
    <p class="muted">Metered calls (predictions) per UTC day.</p>
    {props.reports.length === 0 && <p>No API key yet.</p>}
    {props.reports.map((r) => (
      <Key session={props.session} report={r} now={props.now} />
    ))}
  </Page>
);
