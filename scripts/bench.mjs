// npm run bench               runs every bench/<package>.ts
// npm run bench -- <package>  runs one (e.g. storage, jasper, amber-store, marken, trainer)
// npm run bench -- trainer --sizes 4096 --peak-gflops 67000   passes the flags on to the benchmark
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
const all = fs
  .readdirSync(path.join(root, "bench"))
  .filter((f) => f.endsWith(".ts"))
  .map((f) => f.slice(0, -3))
  .sort()
// `npm run bench -- trainer --sizes 4096`: names first; everything from the first `--flag` on goes to each benchmark
const args = process.argv.slice(2)
const firstFlag = args.findIndex((a) => a.startsWith("--"))
const wanted = firstFlag < 0 ? args : args.slice(0, firstFlag)
const flags = firstFlag < 0 ? [] : args.slice(firstFlag)
const unknown = wanted.filter((w) => !all.includes(w))
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(", ")}; available: ${all.join(", ")}`)
  process.exit(2)
}
let failed = 0
for (const name of wanted.length ? wanted : all) {
  console.log(`\n### bench/${name}.ts`)
  const r = spawnSync(
    path.join(root, "node_modules/.bin/tsx"),
    ["--conditions=@org/source", path.join(root, "bench", `${name}.ts`), ...flags],
    {
      stdio: "inherit",
      cwd: root
    }
  )
  if (r.status !== 0) failed++
}
process.exit(failed ? 1 : 0)
