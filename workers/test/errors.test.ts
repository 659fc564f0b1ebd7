/**
 * The one error envelope: what `app.onError` answers for each kind of thrown error (errors.ts), and the same seen
 * through the app for the errors Hono itself throws.
 */
import { describe, expect, it } from "vitest";
import { HTTPException } from "hono/http-exception";
import { FedgeError } from "@fedge/protocol";
import { UpdateCodecError } from "@fedge/protocol";
import { edgeCodeForStatus, edgeError } from "../src/errors.ts";
import { ADMIN, call } from "./rounds-helpers.ts";

describe("edgeError", () => {
  it("renders a FedgeError as it is", () => {
    const err = new FedgeError("nonce_used", 409, "used");
    expect(edgeError(err)).toBe(err);
  });

  it("maps a domain error through its own toFedgeError()", () => {
    expect(edgeError(new UpdateCodecError("bad_magic", "not an update"))?.toJSON()).toEqual({
      error: { code: "malformed_update", message: "update rejected (bad_magic): not an update" },
    });
    expect(edgeError(new UpdateCodecError("oversize", "too big"))).toMatchObject({
      code: "payload_too_large",
      status: 413,
    });
  });

  it("gives Hono's HTTPExceptions the code fedge uses for their status", () => {
    expect(edgeError(new HTTPException(400, { message: "Malformed JSON in request body" }))).toMatchObject({
      code: "invalid_json",
      status: 400,
    });
    expect(edgeError(new HTTPException(415, { message: "Unsupported Media Type" }))).toMatchObject({
      code: "unsupported_media_type",
      status: 415,
    });
    expect(edgeError(new HTTPException(401))).toMatchObject({ code: "unauthorized", message: "request rejected" });
    expect(edgeCodeForStatus(403)).toBe("forbidden");
    expect(edgeCodeForStatus(418)).toBe("bad_request");
    expect(edgeCodeForStatus(503)).toBe("internal");
  });

  it("leaves anything else to the 500 that hides its message", () => {
    expect(edgeError(new RangeError("q must be in [0, 1]"))).toBeNull();
    expect(edgeError("a string")).toBeNull();
  });
});

describe("errors Hono throws, through the app", () => {
  const openRound = (headers: Record<string, string>, body: string) =>
    call("/v1/admin/rounds", { method: "POST", headers: { ...ADMIN, ...headers }, body });

  it("answers a malformed JSON body with 400 invalid_json", async () => {
    const res = await openRound({ "content-type": "application/json" }, "{nope");
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: { code: "invalid_json", message: expect.stringMatching(/^malformed JSON/) },
    });
  });

  it("answers a body of the wrong content type with 415 unsupported_media_type", async () => {
    const res = await openRound({ "content-type": "text/plain" }, "{}");
    expect(res.status).toBe(415);
    expect(await res.json()).toEqual({ error: { code: "unsupported_media_type", message: expect.any(String) } });
  });
});
