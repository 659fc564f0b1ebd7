/**
 * `npm run demo`: runs the largest real slice of fedge that exists on the embedded local default.
 * Today: start the edge (`wrangler dev`, workerd with persisted state), probe it, list its API.
 */
import { startLocalEdge } from "@fedge/test";

const edge = await startLocalEdge({ port: Number(process.env.FEDGE_DEMO_PORT ?? 8787) });
try {
  const started = performance.now();
  const health = await (await fetch(`${edge.url}/v1/health`)).json();
  console.log(`edge up at ${edge.url}:`, JSON.stringify(health), `(${(performance.now() - started).toFixed(1)} ms)`);
  const doc = (await (await fetch(`${edge.url}/openapi.json`)).json()) as {
    info: { title: string };
    paths: Record<string, object>;
  };
  console.log(`${doc.info.title}: ${Object.keys(doc.paths).length} documented routes`);
  for (const [p, methods] of Object.entries(doc.paths))
    console.log(`  ${Object.keys(methods).join(",").toUpperCase().padEnd(8)} ${p}`);
} finally {
  await edge.stop();
}
