import { packageConfig } from "../../tsup.base.js"

// the worker thread of threaded CPU devices is its own entry (dist/worker.js, dist/worker.cjs), found beside the
// module that starts it; `shims` gives the CommonJS build an `import.meta.url`
export default {
  ...packageConfig([]),
  entry: { index: "src/index.ts", worker: "src/internal/worker.ts" },
  shims: true,
  // only the TypeScript sources bundle the worker with esbuild (tests, benchmarks); the build never loads it
  external: ["esbuild"]
}
