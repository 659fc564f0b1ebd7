/**
 * @module
 * The page shell every dashboard page renders into: title, navigation, the logout button (a POST with the session's
 * CSRF token) and the stylesheet bundled with the Worker.
 */
import type { Child, FC } from "hono/jsx";
import type { DashboardSession } from "./session.ts";

export const DASHBOARD_PAGES = [
  { path: "/dashboard", label: "Populations" },
  { path: "/dashboard/rounds", label: "Rounds" },
  { path: "/dashboard/models", label: "Model versions" },
  { path: "/dashboard/devices", label: "Devices" },
  { path: "/dashboard/keys", label: "API keys" },
] as const;

/** The hidden field that carries the session's CSRF token in every state-changing form. */
export const CsrfField: FC<{ session: DashboardSession }> = ({ session }) => (
  <input type="hidden" name="_csrf" value={session.csrf} />
);

export const Page: FC<{ title: string; current?: string; session?: DashboardSession; children?: Child }> = (props) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="referrer" content="same-origin" />
      <title>{props.title} · fedge dashboard</title>
      <link rel="stylesheet" href="/dashboard/assets/style.css" />
    </head>
    <body>
      <header>
        <span class="brand">fedge</span>
        {props.session && (
          <>
            <nav>
              {DASHBOARD_PAGES.map((p) => (
                <a href={p.path} aria-current={p.path === props.current ? "page" : undefined}>
                  {p.label}
                </a>
              ))}
            </nav>
            <form method="post" action="/dashboard/logout">
              <CsrfField session={props.session} />
              <button type="submit" id="logout">
                Log out
              </button>
            </form>
          </>
        )}
      </header>
      <main>
        <h1>{props.title}</h1>
        {props.children}
      </main>
    </body>
  </html>
);

/** An ISO time as `YYYY-MM-DD HH:MM UTC` (or — for none). */
export function when(iso: string | null): string {
  return iso === null ? "—" : `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/** ε or another real number for a table cell: 4 significant digits. */
export function real(value: number | null): string {
  return value === null ? "—" : String(Number(value.toPrecision(4)));
}
