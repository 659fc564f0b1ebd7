import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Tests run inside real workerd with the bindings from the root wrangler.toml (DO, R2, KV emulation).
export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "../wrangler.toml" },
      miniflare: {
        // The edge's receipt key: a fixed test seed (32 bytes of 0x2a, base64url); its public key is in rounds-helpers.ts.
        bindings: {
          FEDGE_ADMIN_TOKEN: "test-admin-token",
          FEDGE_ENV: "test",
          FEDGE_EDGE_SIGNING_KEY: "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio",
        },
      },
    }),
  ],
  test: {
    name: "workers",
    include: ["test/**/*.test.ts", "src/**/*.test.ts"],
    testTimeout: 60_000,
    // Loading onnxruntime-web inside workerd in a beforeAll takes seconds on a loaded 2-core machine, and beforeAll
    // hooks upload models (session creation) while sharing the cores with the other test files.
    hookTimeout: 60_000,
    // Reference outputs from onnxruntime-node (Node side) for the inference tests; the second reads the built seed
    // models (the bootstrap builds them before `npm test`).
    globalSetup: ["test/inference-expected.setup.ts", "test/seed-models.setup.ts"],
  },
});
