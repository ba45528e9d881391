import { defineConfig } from "tsup"

/** The build of every published package: ESM + CJS + .d.ts/.d.cts with source maps, for Node 20. */
export const packageConfig = (entry: ReadonlyArray<string>) =>
  defineConfig({
    entry: [...entry],
    format: ["esm", "cjs"],
    dts: true,
    sourcemap: true,
    clean: true,
    treeshake: true,
    // shared chunks in CommonJS too: an error class is one class across entry points, so `instanceof` holds in CJS
    splitting: true,
    // class and function names as written (esbuild renames on a collision: `_StorageError`); every error class's
    // `.name` equals its `_tag`
    keepNames: true,
    target: "node20",
    tsconfig: "tsconfig.build.json"
  })
