/**
 * The operator dashboard's session inside workerd: the admin token is exchanged once for a session cookie with the
 * right attributes (`__Host-` and Secure over HTTPS); a tampered, expired or foreign cookie is refused; without a session
 * every page sends the browser to the login page and every action is a 401 that changes nothing and touches no Durable
 * Object; a wrong token or a form of the wrong type is refused; logging out ends the session on the edge.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { SESSION_TTL_MS, issueSession, verifySession } from "../src/dashboard/session.ts";
import { call } from "./rounds-helpers.ts";

const TOKEN = "test-admin-token";
const FORM = { "content-type": "application/x-www-form-urlencoded" };

async function login(base = "http://edge"): Promise<Response> {
  return exports.default.fetch(`${base}/dashboard/login`, {
    method: "POST",
    headers: { ...FORM, origin: base },
    body: `token=${encodeURIComponent(TOKEN)}`,
    redirect: "manual",
  });
}

function cookieOf(res: Response): { pair: string; attributes: string } {
  const header = res.headers.get("set-cookie") ?? "";
  const [pair, ...attributes] = header.split(";").map((s) => s.trim());
  return { pair: pair!, attributes: attributes.join("; ") };
}

async function endedSessionTables(): Promise<string[]> {
  return runInDurableObject(env.ADMIN_NONCES.getByName("dashboard-ended-sessions"), (_i, state) =>
    state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%'")
      .toArray()
      .map((r) => r.name),
  );
}

describe("dashboard session", () => {
  it("exchanges the admin token for an HttpOnly, SameSite=Strict cookie that carries no token", async () => {
    const res = await login();
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/dashboard");
    const { pair, attributes } = cookieOf(res);
    expect(pair).toMatch(/^fedge-dashboard=[\w-]{22}\.\d+\.[\w-]{43}$/);
    expect(pair).not.toContain(TOKEN);
    expect(attributes).toContain("HttpOnly");
    expect(attributes).toContain("SameSite=Strict");
    expect(attributes).toContain(`Max-Age=${SESSION_TTL_MS / 1000}`);
    const page = await call("/dashboard", { headers: { cookie: pair } });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("cache-control")).toBe("no-store");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
  });

  it("over HTTPS the cookie is __Host- prefixed and Secure", async () => {
    const res = await login("https://edge.example");
    expect(res.status).toBe(303);
    const { pair, attributes } = cookieOf(res);
    expect(pair).toMatch(/^__Host-fedge-dashboard=/);
    expect(attributes).toContain("Secure");
    expect(attributes).toContain("Path=/");
  });

  it("refuses a tampered, expired or foreign session value", async () => {
    const now = Date.now();
    const { cookie } = await issueSession(TOKEN, now);
    expect(await verifySession(TOKEN, cookie, now)).not.toBeNull();
    const [id, expires, mac] = cookie.split(".");
    expect(await verifySession(TOKEN, `${id}.${Number(expires) + 1000}.${mac}`, now)).toBeNull();
    expect(
      await verifySession(TOKEN, `${id}.${expires}.${mac![0] === "A" ? "B" : "A"}${mac!.slice(1)}`, now),
    ).toBeNull();
    expect(await verifySession(TOKEN, cookie, now + SESSION_TTL_MS + 1)).toBeNull();
    // A rotated admin token ends every session.
    expect(await verifySession("another-token", cookie, now)).toBeNull();
    expect(await verifySession(TOKEN, undefined, now)).toBeNull();
    expect(await verifySession(TOKEN, "garbage", now)).toBeNull();
  });

  it("without a session: pages redirect to the login page, actions are 401 and touch no Durable Object", async () => {
    for (const path of [
      "/dashboard",
      "/dashboard/rounds",
      "/dashboard/models",
      "/dashboard/devices",
      "/dashboard/keys",
    ]) {
      const res = await call(path, { redirect: "manual" });
      expect(res.status, path).toBe(303);
      expect(res.headers.get("location")).toBe("/dashboard/login");
    }
    const forged = "fedge-dashboard=AAAAAAAAAAAAAAAAAAAAAA.9999999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for (const path of [
      "/dashboard/logout",
      "/dashboard/models/some-model/rollback",
      "/dashboard/devices/dev_abcdefgh/revoke",
      "/dashboard/keys/abc/revoke",
    ]) {
      for (const headers of [{ ...FORM }, { ...FORM, cookie: forged }]) {
        const res = await call(path, { method: "POST", headers, body: "_csrf=x" });
        expect(res.status, path).toBe(401);
        expect(await res.text()).toContain("unauthorized");
      }
    }
    expect(await endedSessionTables()).toEqual([]);
  });

  it("refuses a wrong token (403, no cookie) and a form that is not urlencoded (415)", async () => {
    const wrong = await call("/dashboard/login", { method: "POST", headers: FORM, body: "token=nope" });
    expect(wrong.status).toBe(403);
    expect(wrong.headers.get("set-cookie")).toBeNull();
    expect(await wrong.text()).toContain("not the admin token");
    const json = await call("/dashboard/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: TOKEN }),
    });
    expect(json.status).toBe(415);
    expect(json.headers.get("set-cookie")).toBeNull();
    const crossSite = await call("/dashboard/login", {
      method: "POST",
      headers: { ...FORM, origin: "https://evil.example" },
      body: `token=${TOKEN}`,
    });
    expect(crossSite.status).toBe(403);
    expect(crossSite.headers.get("set-cookie")).toBeNull();
  });

  it("logging out ends the session on the edge, not only in the browser", async () => {
    const { pair } = cookieOf(await login());
    const page = await (await call("/dashboard", { headers: { cookie: pair } })).text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
    const out = await call("/dashboard/logout", {
      method: "POST",
      headers: { ...FORM, cookie: pair },
      body: `_csrf=${encodeURIComponent(csrf)}`,
    });
    expect(out.status).toBe(200);
    expect(out.headers.get("set-cookie")).toContain("Max-Age=0");
    const again = await call("/dashboard", { headers: { cookie: pair }, redirect: "manual" });
    expect(again.status).toBe(303);
    expect(again.headers.get("location")).toBe("/dashboard/login");
  });
});
