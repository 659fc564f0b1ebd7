/**
 * @module
 * The operator dashboard at `/dashboard`: server-rendered Hono JSX pages and inline SVG charts, a stylesheet bundled
 * with the Worker, no script at all. The operator logs in once with the admin token and gets a one-hour session cookie
 * (HttpOnly, SameSite=Strict, Secure and `__Host-` over HTTPS; session.ts says how it is made and checked, SECURITY.md
 * why). Every page needs the session; every POST also needs the session's CSRF token and a same-origin `Origin`.
 *
 * Without a valid session nothing here reads or writes a Durable Object, R2 or KV: the cookie's MAC is checked first.
 */
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { JSX } from "hono/jsx/jsx-runtime";
import { ApiKeyId, DeviceId, FedgeError, ModelName, ModelVersion } from "@fedge/protocol";
import type { AppEnv } from "../env.ts";
import { edgeError } from "../errors.ts";
import { bodyOf } from "../middleware/body-limit.ts";
import { mediaType } from "../middleware/validation/index.ts";
import { constantTimeEqual } from "../middleware/auth/index.ts";
import { chargeAuthFailure, refuseIfAuthFailuresExhausted } from "../middleware/ip-rate-limit.ts";
import { deviceStub } from "../durable-objects/device-registry.ts";
import { promote, rollback } from "../registry/index.ts";
import { revokeApiKey } from "../routes/admin-keys.ts";
import { throwIfPending } from "../routes/admin-devices.ts";
import { forgetVerifiedDevice } from "../training/index.ts";
import { DASHBOARD_CSS } from "./style.ts";
import {
  SESSION_TTL_MS,
  csrfMatches,
  endSession,
  isSessionEnded,
  issueSession,
  verifySession,
  type DashboardSession,
} from "./session.ts";
import { ErrorPage, LoginPage } from "./pages/login.tsx";
import { PopulationsPage, loadPopulations } from "./pages/populations.tsx";
import { RoundsPage, loadRounds } from "./pages/rounds.tsx";
import { ModelsPage, loadModels } from "./pages/models.tsx";
import { DevicesPage, loadDevice, loadDeviceTotals } from "./pages/devices.tsx";
import { KeysPage, loadKeys } from "./pages/keys.tsx";

declare module "hono" {
  interface ContextVariableMap {
    /** Set by the dashboard's session check. */
    dashboardSession: DashboardSession;
  }
}

/** Largest form body the dashboard reads (its forms carry a token and a few ids). */
const MAX_FORM_BYTES = 8 * 1024;

/**
 * Pages may load only the edge's own stylesheet; no script runs, forms post only to the edge, and no other site may
 * frame the page (its buttons cannot be clickjacked).
 */
const CSP =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

function isHttps(c: Context<AppEnv>): boolean {
  return new URL(c.req.url).protocol === "https:";
}

/** Over HTTPS the `__Host-` prefix pins the cookie to this origin, Secure and path `/`; plain HTTP is local dev only. */
function cookieName(c: Context<AppEnv>): string {
  return isHttps(c) ? "__Host-fedge-dashboard" : "fedge-dashboard";
}

async function render(c: Context<AppEnv>, page: JSX.Element, status = 200): Promise<Response> {
  return c.html(`<!doctype html>${await page.toString()}`, status as 200);
}

/** The urlencoded body of a dashboard form, read through the edge's capped reader. */
async function readForm(c: Context<AppEnv>): Promise<URLSearchParams> {
  if (mediaType(c.req.header("content-type")) !== "application/x-www-form-urlencoded") {
    throw new FedgeError("unsupported_media_type", 415, "dashboard forms are application/x-www-form-urlencoded");
  }
  return new URLSearchParams(new TextDecoder().decode(await bodyOf(c, MAX_FORM_BYTES)));
}

/** A POST must come from a page of this origin (browsers send `Origin` on every form POST). */
function requireSameOrigin(c: Context<AppEnv>): void {
  const origin = c.req.header("origin");
  const site = c.req.header("sec-fetch-site");
  if (
    (origin !== undefined && origin !== new URL(c.req.url).origin) ||
    (site !== undefined && site !== "same-origin")
  ) {
    throw new FedgeError("forbidden", 403, "dashboard forms are accepted from the dashboard's own origin only");
  }
}

/** The session of the request, or null; a logged-out session is null too. */
async function currentSession(c: Context<AppEnv>): Promise<DashboardSession | null> {
  const token = c.env.FEDGE_ADMIN_TOKEN;
  if (!token) return null;
  const session = await verifySession(token, getCookie(c, cookieName(c)), Date.now());
  if (!session || (await isSessionEnded(c.env, session, Date.now()))) return null;
  return session;
}

/** Pages: a request without a session goes to the login page. */
const pageSession: MiddlewareHandler<AppEnv> = async (c, next) => {
  const session = await currentSession(c);
  if (!session) return c.redirect("/dashboard/login", 303);
  c.set("dashboardSession", session);
  return next();
};

/** Actions: a session, a same-origin POST and the session's CSRF token; returns the form. */
async function actionForm(c: Context<AppEnv>): Promise<{ session: DashboardSession; form: URLSearchParams }> {
  requireSameOrigin(c);
  const session = await currentSession(c);
  if (!session) throw new FedgeError("unauthorized", 401, "no dashboard session: log in again");
  const form = await readForm(c);
  if (!(await csrfMatches(session, form.get("_csrf")))) {
    throw new FedgeError("forbidden", 403, "missing or wrong CSRF token: reload the page and try again");
  }
  return { session, form };
}

function param<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } },
  v: unknown,
  what: string,
): T {
  const parsed = schema.safeParse(v);
  if (!parsed.success) throw new FedgeError("validation_failed", 400, `${what}: not a valid value`);
  return parsed.data;
}

export const dashboard = new Hono<AppEnv>();

dashboard.use("/dashboard/*", async (c, next) => {
  await next();
  c.header("content-security-policy", CSP);
  c.header("x-frame-options", "DENY");
  c.header("x-content-type-options", "nosniff");
  // same-origin, not no-referrer: under no-referrer Chromium sends `Origin: null` with form POSTs.
  c.header("referrer-policy", "same-origin");
  if (!c.req.path.startsWith("/dashboard/assets/")) c.header("cache-control", "no-store");
});
dashboard.use("/dashboard", async (c, next) => {
  await next();
  c.header("content-security-policy", CSP);
  c.header("x-frame-options", "DENY");
  c.header("cache-control", "no-store");
});

dashboard.onError(async (err, c) => {
  const mapped = edgeError(err);
  if (!mapped) console.error("dashboard error", err);
  const status = mapped?.status ?? 500;
  const page = (
    <ErrorPage
      status={status}
      code={mapped?.code ?? "internal"}
      message={mapped?.message ?? "internal error"}
      signedIn={c.get("dashboardSession") !== undefined}
    />
  );
  return render(c, page, status);
});

dashboard.get("/dashboard/assets/style.css", (c) => {
  c.header("content-type", "text/css; charset=utf-8");
  c.header("cache-control", "public, max-age=3600");
  return c.body(DASHBOARD_CSS);
});

dashboard.get("/dashboard/login", async (c) => {
  if (await currentSession(c)) return c.redirect("/dashboard", 303);
  return render(c, <LoginPage />);
});

dashboard.post("/dashboard/login", async (c) => {
  requireSameOrigin(c);
  refuseIfAuthFailuresExhausted(c);
  const form = await readForm(c);
  const submitted = form.get("token") ?? "";
  const expected = c.env.FEDGE_ADMIN_TOKEN;
  if (!expected) return render(c, <LoginPage error="No admin token is configured on this edge." />, 403);
  if (submitted === "" || !(await constantTimeEqual(submitted, expected))) {
    chargeAuthFailure(c);
    return render(c, <LoginPage error="That is not the admin token." />, 403);
  }
  const { cookie } = await issueSession(expected, Date.now());
  setCookie(c, cookieName(c), cookie, {
    path: "/",
    httpOnly: true,
    secure: isHttps(c),
    sameSite: "Strict",
    maxAge: SESSION_TTL_MS / 1000,
  });
  return c.redirect("/dashboard", 303);
});

dashboard.post("/dashboard/logout", async (c) => {
  const { session } = await actionForm(c);
  await endSession(c.env, session);
  deleteCookie(c, cookieName(c), { path: "/", secure: isHttps(c) });
  return render(c, <LoginPage notice="Logged out." />);
});

dashboard.get("/dashboard", pageSession, async (c) =>
  render(c, <PopulationsPage session={c.get("dashboardSession")} populations={await loadPopulations(c.env)} />),
);

dashboard.get("/dashboard/rounds", pageSession, async (c) =>
  render(c, <RoundsPage session={c.get("dashboardSession")} populations={await loadRounds(c.env, Date.now())} />),
);

dashboard.get("/dashboard/models", pageSession, async (c) =>
  render(c, <ModelsPage session={c.get("dashboardSession")} models={await loadModels(c.env)} />),
);

dashboard.get("/dashboard/devices", pageSession, async (c) => {
  const query = c.req.query("device");
  const lookup =
    query === undefined || query === ""
      ? null
      : { id: query, device: await loadDevice(c.env, param(DeviceId, query, "device")) };
  return render(
    c,
    <DevicesPage session={c.get("dashboardSession")} totals={await loadDeviceTotals(c.env)} lookup={lookup} />,
  );
});

dashboard.get("/dashboard/keys", pageSession, async (c) => {
  const now = Date.now();
  return render(c, <KeysPage session={c.get("dashboardSession")} reports={await loadKeys(c.env, now)} now={now} />);
});

dashboard.post("/dashboard/models/:name/promote", async (c) => {
  const { form } = await actionForm(c);
  const name = param(ModelName, c.req.param("name"), "model");
  const version = param(ModelVersion, Number(form.get("version")), "version");
  await promote(c.env, name, version, Date.now());
  return c.redirect("/dashboard/models", 303);
});

dashboard.post("/dashboard/models/:name/rollback", async (c) => {
  await actionForm(c);
  await rollback(c.env, param(ModelName, c.req.param("name"), "model"), Date.now());
  return c.redirect("/dashboard/models", 303);
});

dashboard.post("/dashboard/devices/:id/revoke", async (c) => {
  await actionForm(c);
  const id = param(DeviceId, c.req.param("id"), "device");
  const revoked = await deviceStub(c.env, id).revokeDevice(Date.now());
  forgetVerifiedDevice(id);
  if (!revoked) throw new FedgeError("device_not_found", 404, `no device ${id}`);
  // Not in force until every population has it: the page says so, and the button can be pressed again.
  throwIfPending(c, id, revoked.unreached);
  return c.redirect(`/dashboard/devices?device=${encodeURIComponent(id)}`, 303);
});

dashboard.post("/dashboard/keys/:id/revoke", async (c) => {
  await actionForm(c);
  await revokeApiKey(c.env, param(ApiKeyId, c.req.param("id"), "key"), Date.now());
  return c.redirect("/dashboard/keys", 303);
});
