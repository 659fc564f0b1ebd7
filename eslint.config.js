// @ts-check
/**
 * Lint: typescript-eslint (type-aware) for promise misuse and unused code, plus the package graph.
 *
 * The graph (docs/DESIGN.md): protocol and privacy depend on nothing of ours; secagg on protocol (its messages); ml on those two (wire types, samplers); the runtimes
 * (gpu-node, client-sdk, workers) on the pure packages; the aggregator on those and gpu-node; demo, test, bench
 * and scripts on anything. An import outside a package's allowed set, or a path into another package's src/, fails.
 */
import tseslint from "typescript-eslint";

/** Package folder → its npm name and the @fedge packages it may import. */
const GRAPH = {
  protocol: { name: "@fedge/protocol", deps: [] },
  privacy: { name: "@fedge/privacy", deps: [] },
  secagg: { name: "@fedge/secagg", deps: ["protocol"] },
  ml: { name: "@fedge/ml", deps: ["protocol", "privacy"] },
  "gpu-node": { name: "@fedge/gpu-node", deps: ["protocol", "privacy", "ml"] },
  "client-sdk": { name: "@fedge/client", deps: ["protocol", "privacy", "secagg", "ml"] },
  workers: { name: "@fedge/workers", deps: ["protocol", "privacy", "secagg", "ml"] },
  aggregator: { name: "fedge", deps: ["protocol", "privacy", "ml", "gpu-node"] },
  "local-edge": { name: "@fedge/local-edge", deps: ["protocol", "ml"] },
  demo: {
    name: "@fedge/demo",
    deps: ["protocol", "privacy", "secagg", "ml", "gpu-node", "client-sdk", "aggregator", "local-edge"],
  },
};
const ALL = Object.keys(GRAPH);

/** no-restricted-imports for one package: other packages it may not use, and any path into another's folder. */
function boundaries(dir) {
  const allowed = new Set(GRAPH[dir]?.deps ?? ALL);
  const forbidden = ALL.filter((d) => d !== dir && !allowed.has(d));
  const others = ALL.filter((d) => d !== dir);
  const patterns = [
    ...forbidden.map((d) => ({
      group: [GRAPH[d].name, `${GRAPH[d].name}/*`],
      message: `${dir} may not depend on ${GRAPH[d].name} (the package graph in docs/DESIGN.md)`,
    })),
    {
      regex: `^\\.{1,2}/(.*/)?(${others.join("|")})/`,
      message: "import another package through its name and exports, never by a path into its folder",
    },
    { regex: "^(@fedge/[^/]+|fedge)/src/", message: "import a package through its exports, never its src/" },
  ];
  return {
    files: [`${dir}/**/*.ts`, `${dir}/**/*.tsx`],
    rules: { "no-restricted-imports": ["error", { patterns }] },
  };
}

export default tseslint.config(
  {
    ignores: [
      "**/node_modules/**",
      "**/.wrangler/**",
      "**/dist/**",
      ".tsbuild/**",
      "demo-out/**",
      "models/**",
      "workers/worker-configuration.d.ts",
      "**/*.d.ts",
      "eslint.config.js",
      "vitest.config.ts",
    ],
  },
  {
    files: ["**/*.ts", "**/*.tsx"],
    extends: [tseslint.configs.base],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none", ignoreRestSiblings: true },
      ],
    },
  },
  ...[...ALL, "test", "bench", "scripts"].map(boundaries),
);
