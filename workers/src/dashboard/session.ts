/**
 * @module
 * The operator dashboard's browser session, in exchange for the admin token.
 *
 * The operator types the admin token once into the login form (a POST body, never a URL). The edge compares it in
 * constant time with `FEDGE_ADMIN_TOKEN` and answers with a session cookie `<id>.<expires>.<mac>`: a random 128-bit
 * id from the CSPRNG, its expiry (epoch ms, `SESSION_TTL_MS` ahead) and an HMAC-SHA256 over both, under a key derived
 * with HKDF from the admin token. So the token itself never sits in the browser, a forged or altered cookie fails the
 * MAC without any storage read, and rotating the admin token ends every session at once. Logging out records the
 * session id as ended in an `AdminNonces` object until its expiry; only a request whose MAC verified reaches it.
 *
 * Each form that changes state carries a CSRF token, the HMAC of the session id under the same key (a synchronizer
 * token that needs no storage), on top of the cookie's SameSite=Strict and a same-origin check of `Origin`.
 */
import { toBase64Url } from "@fedge/protocol";
import type { Bindings } from "../env.ts";
import { constantTimeEqual } from "../middleware/auth/index.ts";

/** How long a dashboard session lasts from login (no sliding renewal). */
export const SESSION_TTL_MS = 60 * 60_000;

/** A verified session. */
export interface DashboardSession {
  id: string;
  expiresAt: number;
  /** The token every state-changing form of this session must send back as `_csrf`. */
  csrf: string;
}

const enc = new TextEncoder();
const COOKIE_PATTERN = /^([A-Za-z0-9_-]{22})\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/;

/** The HMAC key of sessions, derived from the admin token (HKDF-SHA256, RFC 5869) so the token signs nothing itself. */
async function sessionKey(adminToken: string): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey("raw", enc.encode(adminToken), "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: enc.encode("fedge dashboard session v1") },
    base,
    { name: "HMAC", hash: "SHA-256", length: 256 },
    false,
    ["sign"],
  );
}

async function mac(key: CryptoKey, message: string): Promise<string> {
  return toBase64Url(new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(message))));
}

async function sessionOf(key: CryptoKey, id: string, expiresAt: number): Promise<DashboardSession> {
  return { id, expiresAt, csrf: await mac(key, `csrf.${id}`) };
}

/** A fresh session and the cookie value that carries it. */
export async function issueSession(
  adminToken: string,
  now: number,
): Promise<{ session: DashboardSession; cookie: string }> {
  const key = await sessionKey(adminToken);
  const id = toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
  const expiresAt = now + SESSION_TTL_MS;
  const cookie = `${id}.${expiresAt}.${await mac(key, `session.${id}.${expiresAt}`)}`;
  return { session: await sessionOf(key, id, expiresAt), cookie };
}

/**
 * The session a cookie value proves, or `null` when it is malformed, its MAC does not verify, or it expired. Ended
 * sessions (logout) are checked separately by `isSessionEnded`, after this succeeded.
 */
export async function verifySession(
  adminToken: string,
  cookie: string | undefined,
  now: number,
): Promise<DashboardSession | null> {
  const m = cookie ? COOKIE_PATTERN.exec(cookie) : null;
  if (!m) return null;
  const [, id, expires, tag] = m as unknown as [string, string, string, string];
  const expiresAt = Number(expires);
  if (!(expiresAt > now) || expiresAt > now + SESSION_TTL_MS) return null;
  const key = await sessionKey(adminToken);
  if (!(await constantTimeEqual(tag, await mac(key, `session.${id}.${expiresAt}`)))) return null;
  return sessionOf(key, id, expiresAt);
}

/** Whether the CSRF token a form sent back is this session's. */
export async function csrfMatches(session: DashboardSession, submitted: unknown): Promise<boolean> {
  return typeof submitted === "string" && (await constantTimeEqual(submitted, session.csrf));
}

function endedSessions(env: Bindings) {
  return env.ADMIN_NONCES.getByName("dashboard-ended-sessions");
}

/** Ends a session before its expiry (logout): remembered until it would have expired anyway. */
export async function endSession(env: Bindings, session: DashboardSession): Promise<void> {
  await endedSessions(env).claim(session.id, session.expiresAt);
}

/** Whether the operator logged this session out. */
export async function isSessionEnded(env: Bindings, session: DashboardSession, now: number): Promise<boolean> {
  return endedSessions(env).seen(session.id, now);
}
