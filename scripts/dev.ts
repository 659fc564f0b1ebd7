/**
 * `npm run dev`: the local edge on http://127.0.0.1:8787 (`wrangler dev`, workerd; R2/KV/DO state persisted under
 * `.wrangler/state`), with the seed models `mnist-mlp`, `mnist-cnn` and `text-transformer` (int8, from
 * `models/<name>/int8.onnx`, built by the bootstrap) uploaded through the admin API when the registry does not have
 * them yet.
 *
 * Keys come from `.dev.vars` (written by the bootstrap, never committed): `FEDGE_ADMIN_TOKEN` is the admin bearer,
 * and `FEDGE_DEV_API_KEY` (`fk_dev_…`) is accepted as the API key with id `dev`, because the local edge runs with
 * `FEDGE_ENV=local` (@fedge/local-edge passes it, `.dev.vars` has it; wrangler.toml's own value is production's, which
 * refuses the key). The worker registers its hash in the key's ledger on first use.
 * Runs until Ctrl-C. Environment: FEDGE_DEV_PORT (default 8787).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot, startLocalEdge } from "@fedge/local-edge";
import { uploadManifestFromOnnx } from "@fedge/ml";

const MODEL = "mnist-mlp";
/** Seed models served by `npm run dev` (the first is the v1 example). */
const SEED_MODELS = [MODEL, "mnist-cnn", "text-transformer"];

function readDevVars(): Record<string, string> {
  const file = join(repoRoot, ".dev.vars");
  if (!existsSync(file)) throw new Error(".dev.vars is missing: run `npm run bootstrap` first");
  const vars: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) vars[m[1]!] = m[2]!.replace(/^"(.*)"$/, "$1");
  }
  for (const k of ["FEDGE_ADMIN_TOKEN", "FEDGE_DEV_API_KEY"]) {
    if (!vars[k]) throw new Error(`.dev.vars has no ${k}: delete it and run \`npm run bootstrap\``);
  }
  return vars;
}

/** Upload `models/<name>/int8.onnx` as version 1 when the registry has no such model. Returns whether it uploaded. */
export async function seedModel(url: string, adminToken: string, name = MODEL): Promise<boolean> {
  const existing = await fetch(`${url}/v1/models/${name}`);
  if (existing.status === 200) return false;
  if (existing.status !== 404) throw new Error(`GET /v1/models/${name}: ${existing.status} ${await existing.text()}`);
  const dir = join(repoRoot, "models", name);
  const file = join(dir, "int8.onnx");
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run bootstrap\` (it builds the seed models)`);
  const bytes = new Uint8Array(readFileSync(file));
  let layout: string | undefined;
  try {
    const meta = JSON.parse(readFileSync(join(dir, "meta.json"), "utf8")) as { layout?: unknown };
    if (typeof meta.layout === "string") layout = meta.layout;
  } catch {
    /* meta.json is optional */
  }
  const form = new FormData();
  form.append("model", new File([bytes], "int8.onnx", { type: "application/octet-stream" }));
  form.append("manifest", JSON.stringify(uploadManifestFromOnnx(name, 1, bytes, layout ? { layout } : {})));
  const res = await fetch(`${url}/v1/admin/models/${name}/versions`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}` },
    body: form,
  });
  if (res.status !== 201) throw new Error(`seeding ${name} failed: ${res.status} ${await res.text()}`);
  return true;
}

async function main(): Promise<void> {
  const vars = readDevVars();
  const port = Number(process.env.FEDGE_DEV_PORT ?? 8787);
  const edge = await startLocalEdge({ port, verbose: process.env.FEDGE_DEV_VERBOSE === "1" });
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await edge.stop();
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));
  try {
    const seeded: boolean[] = [];
    for (const name of SEED_MODELS) seeded.push(await seedModel(edge.url, vars.FEDGE_ADMIN_TOKEN!, name));
    const check = await fetch(`${edge.url}/v1/usage`, {
      headers: { authorization: `Bearer ${vars.FEDGE_DEV_API_KEY}` },
    });
    if (check.status !== 200) throw new Error(`FEDGE_DEV_API_KEY was refused: ${check.status} ${await check.text()}`);
    const zeros = new Array(784).fill(0).join(",");
    console.log(`fedge edge at ${edge.url} (state in .wrangler/state)`);
    SEED_MODELS.forEach((name, i) =>
      console.log(`model ${name}: ${seeded[i] ? `seeded from models/${name}/int8.onnx` : "already in the registry"}`),
    );
    console.log(`API docs: ${edge.url}/docs   OpenAPI: ${edge.url}/openapi.json`);
    console.log(`API key: FEDGE_DEV_API_KEY from .dev.vars; admin token: FEDGE_ADMIN_TOKEN`);
    console.log("\ntry:");
    console.log(`  export $(grep FEDGE_DEV_API_KEY .dev.vars)`);
    console.log(
      `  curl -s ${edge.url}/v1/models/${MODEL}/predict -H "authorization: Bearer $FEDGE_DEV_API_KEY" ` +
        `-H 'content-type: application/json' -d '{"inputs":[[${zeros.slice(0, 12)}…784 numbers…]]}'`,
    );
    console.log(
      `  head -c 3136 /dev/zero | curl -s ${edge.url}/v1/models/${MODEL}/predict -H "authorization: Bearer $FEDGE_DEV_API_KEY" ` +
        `-H 'content-type: application/octet-stream' --data-binary @-`,
    );
    console.log(`  curl -s ${edge.url}/v2/models/text-transformer`);
    console.log(
      `  curl -s ${edge.url}/v2/models/text-transformer/infer -H "authorization: Bearer $FEDGE_DEV_API_KEY" ` +
        `-H 'content-type: application/json' -d '{"inputs":[{"name":"input_ids","shape":[1,4],"datatype":"INT64",` +
        `"data":[3,5,12,0]},{"name":"attention_mask","shape":[1,4],"datatype":"INT64","data":[1,1,1,0]}]}'`,
    );
    console.log(`  curl -s ${edge.url}/v1/usage -H "authorization: Bearer $FEDGE_DEV_API_KEY"`);
    console.log("\nCtrl-C to stop.");
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    console.error(edge.output().slice(-3000));
    await stop(1);
  }
  await new Promise<never>(() => undefined);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
