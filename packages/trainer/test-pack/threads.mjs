// The published trainer runs CPU devices in worker threads, from the ESM build (dist/worker.js): the check of
// threads.cjs with the ESM modules.
import { createRequire } from "node:module"

const { run } = createRequire(import.meta.url)("./threads.cjs")
run("esm", Promise.all([import("effect"), import("@org/trainer")]))
