/**
 * TEST-ONLY: a stand-in for the `wrangler` commands `scripts/provision.ts` runs against a Cloudflare account (which
 * the tests cannot reach). It keeps the account's R2 buckets, KV namespaces and secrets in the JSON file named by
 * FAKE_WRANGLER_STATE, answers in wrangler's output formats, and records every call with its stdin.
 */
import { readFileSync, writeFileSync } from "node:fs";

interface State {
  buckets: string[];
  namespaces: { id: string; title: string }[];
  secrets: Record<string, string>;
  calls: { args: string[]; stdin: string }[];
}

const file = process.env.FAKE_WRANGLER_STATE!;
const state = JSON.parse(readFileSync(file, "utf8")) as State;
const args = process.argv.slice(2);
const stdin = args[0] === "secret" && args[1] === "put" ? readFileSync(0, "utf8") : "";
state.calls.push({ args, stdin });
const [a, b, c, d] = args;
let out = "";
if (a === "r2" && b === "bucket" && c === "list") {
  out = state.buckets.map((n) => `name:           ${n}\ncreation_date:  2026-11-01T00:00:00.000Z\n`).join("\n");
} else if (a === "r2" && b === "bucket" && c === "create") {
  state.buckets.push(d!);
  out = `Creating bucket '${d}'...\n✅ Created bucket '${d}' with default storage class of Standard.\n`;
} else if (a === "kv" && b === "namespace" && c === "list") {
  out = JSON.stringify(state.namespaces, null, 2);
} else if (a === "kv" && b === "namespace" && c === "create") {
  const id = [...crypto.getRandomValues(new Uint8Array(16))].map((x) => x.toString(16).padStart(2, "0")).join("");
  state.namespaces.push({ id, title: d! });
  out = `🌀 Creating namespace with title "${d}"\n✨ Success!\n[[kv_namespaces]]\nbinding = "${d}"\nid = "${id}"\n`;
} else if (a === "secret" && b === "list") {
  out = JSON.stringify(Object.keys(state.secrets).map((name) => ({ name, type: "secret_text" })));
} else if (a === "secret" && b === "put") {
  state.secrets[c!] = stdin.trim();
  out = `✨ Success! Uploaded secret ${c}\n`;
} else {
  process.stderr.write(`fake wrangler: unexpected command ${args.join(" ")}\n`);
  process.exitCode = 1;
}
writeFileSync(file, JSON.stringify(state));
process.stdout.write(out);
