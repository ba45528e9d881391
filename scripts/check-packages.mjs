// Lints every publishable package as npm would publish it: publint and
// @arethetypeswrong/cli on its tarball. Run `npm run build` first: the tarball is packed without the `prepack`
// build (`test:pack` packs with it, from an unbuilt copy, and runs both tools on those tarballs too).
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
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
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "org-check-"))
  const packed = execFileSync("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", out], {
    cwd: dir,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"]
  })
  const tarball = path.join(out, JSON.parse(packed.slice(packed.indexOf("[")))[0].filename)
  for (const [tool, args] of [
    ["publint", ["--strict", dir]],
    ["attw", [tarball, "--format", "table-flipped", "--profile", "node16"]]
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
  fs.rmSync(out, { recursive: true, force: true })
}
if (failed > 0) {
  console.error(`${failed} check(s) failed`)
  process.exit(1)
}
console.log(`all ${packages.length} packages pass publint and attw`)
