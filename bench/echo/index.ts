/**
 * @module
 * The echo worker (baselines for the ingestion benchmark): reads the whole request body and answers with its length in a
 * JSON body about the size of an update receipt. With `?store=1` it also puts the bytes into R2 once (a fresh key each
 * time). `/v1/health` answers so `startLocalEdge` can wait for it.
 */
/** The R2 binding, typed structurally (bench/ is type-checked without the Workers types). */
interface EchoEnv {
  SINK: { put(key: string, value: Uint8Array): Promise<unknown> };
}

export default {
  async fetch(request: Request, env: EchoEnv): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/v1/health") return Response.json({ status: "ok", service: "echo" });
    const body = new Uint8Array(await request.arrayBuffer());
    if (url.searchParams.get("store") === "1") await env.SINK.put(`sink/${crypto.randomUUID()}`, body);
    return Response.json(
      { received_bytes: body.byteLength, padding: "x".repeat(160) },
      { status: request.method === "POST" ? 201 : 200 },
    );
  },
};
