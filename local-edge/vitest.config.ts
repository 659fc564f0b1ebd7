import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "local-edge",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    pool: "forks",
    testTimeout: 60_000,
  },
});
