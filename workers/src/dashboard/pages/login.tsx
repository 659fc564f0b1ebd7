/**
 * @module
 * The login page: one password field for the admin token, posted in the body (never in a URL), exchanged for a
 * session cookie (session.ts).
 */
import type { FC } from "hono/jsx";
import { Page } from "../layout.tsx";

export const LoginPage: FC<{ error?: string; notice?: string }> = (props) => (
  <Page title="Operator login">
    <section class="card login">
      {props.error && (
        <p class="error" role="alert" id="login-error">
          {props.error}
        </p>
      )}
      {props.notice && <p class="notice">{props.notice}</p>}
      <form method="post" action="/dashboard/login">
        <label for="token">Admin token</label>
        <p>
          <input type="password" id="token" name="token" autocomplete="current-password" required />
        </p>
        <button type="submit" class="primary" id="login">
          Log in
        </button>
      </form>
      <p class="muted">The token is checked once and exchanged for a session that lasts an hour.</p>
    </section>
  </Page>
);

/** A refused request, in the dashboard's shell. */
export const ErrorPage: FC<{ status: number; code: string; message: string; signedIn: boolean }> = (props) => (
  <Page title={`Error ${props.status}`}>
    <p class="error" role="alert" data-code={props.code}>
      <b>{props.code}</b>: {props.message}
    </p>
    <p>
      <a href={props.signedIn ? "/dashboard" : "/dashboard/login"}>Back</a>
    </p>
  </Page>
);
