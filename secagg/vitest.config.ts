import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "secagg",
    include: ["src/**/*.test.ts"],
    pool: "forks",
    testTimeout: 60_000,
  },
});
