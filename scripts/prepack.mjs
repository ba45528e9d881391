// The `prepack` and `postpack` of every published package (run in the package's folder by `npm pack` and
// `npm publish`):
//   node ../../scripts/prepack.mjs           builds dist/ with tsup (namespaces repaired: dts-namespaces.mjs),
//                                            then writes the manifest that ships: the
//                                            `@org/source` export conditions (TypeScript sources, used inside
//                                            this repository only) are removed, since src/ is not in the tarball
//   node ../../scripts/prepack.mjs --restore puts the repository's package.json back
// A pack that fails between the two leaves package.json.pack-backup behind; the next run restores it first.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { repairDist } from "./dts-namespaces.mjs"

const root = path.resolve(import.meta.dirname, "..")
const manifest = path.resolve("package.json")
const backup = `${manifest}.pack-backup`
const condition = "@org/source"

const restore = () => {
  if (fs.existsSync(backup)) fs.renameSync(backup, manifest)
}

/** The exports map without the source condition (an entry left with no target is an error, not dropped). */
const strip = (value, at) => {
  if (value === null || typeof value !== "object") return value
  const out = {}
  for (const [key, inner] of Object.entries(value)) if (key !== condition) out[key] = strip(inner, `${at}.${key}`)
  if (Object.keys(value).length > 0 && Object.keys(out).length === 0) {
    throw new Error(`exports${at} has only the ${condition} condition: nothing would resolve in the tarball`)
  }
  return out
}

restore()
if (process.argv.includes("--restore")) process.exit(0)

const text = fs.readFileSync(manifest, "utf8")
const pkg = JSON.parse(text)
console.error(`prepack ${pkg.name}: building dist/ with tsup`)
execFileSync(path.join(root, "node_modules", ".bin", "tsup"), [], { stdio: ["ignore", 2, "inherit"] })
// a value and a type of one name inside `export * as X` namespaces: the dts bundler keeps one of them
for (const line of repairDist(path.resolve("dist"))) console.error(`prepack ${pkg.name}: dts namespaces: ${line}`)
if (pkg.exports !== undefined) {
  fs.writeFileSync(backup, text)
  fs.writeFileSync(manifest, `${JSON.stringify({ ...pkg, exports: strip(pkg.exports, "") }, null, 2)}\n`)
}
