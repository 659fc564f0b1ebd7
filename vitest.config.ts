import { defineConfig } from "vitest/config";

// One `vitest run` covers every package; each package keeps its own config (workers runs inside workerd).
export default defineConfig({
  test: {
    projects: [
      "protocol",
      "privacy",
      "secagg",
      "ml",
      "gpu-node",
      "aggregator",
      "client-sdk",
      "workers",
      "local-edge",
      "demo",
      "test",
    ],
  },
});
