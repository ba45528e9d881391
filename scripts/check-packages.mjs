// Lints every publishable package as npm would publish it: publint and
// @arethetypeswrong/cli (attw --pack). Run `npm run build` first.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
const bin = (name) => path.join(root, "node_modules", ".bin", name)
const packages = fs
  .readdirSync(path.join(root, "packages"))
  .map((d) => path.join(root, "packages", d))
  .filter((d) => fs.existsSync(path.join(d, "package.json")))

let failed = 0
for (const dir of packages) {
  const name = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).name
  if (!fs.existsSync(path.join(dir, "dist"))) {
    console.error(`✗ ${name}: no dist/ (run npm run build)`)
    failed++
    continue
  }
  for (const [tool, args] of [
    ["publint", ["--strict", dir]],
    ["attw", ["--pack", dir, "--format", "table-flipped", "--profile", "node16"]]
  ]) {
    try {
      const out = execFileSync(bin(tool), args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
      console.log(`✓ ${name}: ${tool}`)
      if (process.env.VERBOSE) console.log(out)
    } catch (e) {
      failed++
      console.error(`✗ ${name}: ${tool}\n${e.stdout ?? ""}${e.stderr ?? ""}`)
    }
  }
}
if (failed > 0) {
  console.error(`${failed} check(s) failed`)
  process.exit(1)
}
console.log(`all ${packages.length} packages pass publint and attw`)
