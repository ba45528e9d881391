// Proves that a user's `npm install` works: packs every package, installs the
// tarballs into a fresh project outside the repository, then imports each package
// as ESM and as CJS and uses @org/storage on a SQLite file.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
const work = fs.mkdtempSync(path.join(os.tmpdir(), "org-pack-"))
const tarballs = path.join(work, "tarballs")
const app = path.join(work, "app")
fs.mkdirSync(tarballs)
fs.mkdirSync(app)
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" })

const dirs = fs
  .readdirSync(path.join(root, "packages"))
  .map((d) => path.join(root, "packages", d))
  .filter((d) => fs.existsSync(path.join(d, "package.json")))
const names = []
for (const dir of dirs) {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"))
  const out = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", tarballs], dir))
  names.push(pkg.name)
  console.log(`packed ${pkg.name}: ${out[0].filename} (${out[0].entryCount} files, ${out[0].size} bytes)`)
}

fs.writeFileSync(
  path.join(app, "package.json"),
  JSON.stringify({ name: "pack-test-app", private: true, version: "1.0.0" }, null, 2)
)
const rootPkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"))
const storagePkg = JSON.parse(fs.readFileSync(path.join(root, "packages/storage/package.json"), "utf8"))
const peers = [
  `effect@${rootPkg.devDependencies.effect}`,
  `better-sqlite3@${storagePkg.devDependencies["better-sqlite3"]}`
]
console.log(`installing into ${app} ...`)
run(
  "npm",
  [
    "install",
    "--prefer-offline",
    "--no-audit",
    "--no-fund",
    ...peers,
    ...fs.readdirSync(tarballs).map((f) => path.join(tarballs, f))
  ],
  app
)

const esm = `
${names.map((n, i) => `import * as m${i} from "${n}"`).join("\n")}
import { Effect } from "effect"
import { Database, Vector } from "@org/storage"
import { SqliteStorage } from "@org/storage/sqlite"
const mods = { ${names.map((n, i) => `"${n}": m${i}`).join(", ")} }
for (const [n, m] of Object.entries(mods)) console.log("esm", n, Object.keys(m).join(",") || "(no exports yet)")
const program = Effect.gen(function* () {
  yield* Database.migrate("pack-test", { "0001": { up: async (db, caps) => { await db.schema.createTable("t").addColumn("v", caps.types.binary).execute() } } })
  const bytes = yield* Vector.encode([1, 2, 3], { dimension: 3 })
  yield* Database.use("insert", (db) => db.insertInto("t").values({ v: bytes }).execute())
  const row = yield* Database.use("select", (db) => db.selectFrom("t").selectAll().executeTakeFirstOrThrow())
  return Array.from(yield* Vector.decode(row.v, 3))
})
const out = await Effect.runPromise(program.pipe(Effect.provide(SqliteStorage.layer({ filename: "pack-test.db" }))))
if (out.join() !== "1,2,3") throw new Error("roundtrip failed: " + out)
console.log("esm storage roundtrip on SQLite file:", out)
`
const cjs = `
${names.map((n) => `console.log("cjs", ${JSON.stringify(n)}, Object.keys(require(${JSON.stringify(n)})).join(",") || "(no exports yet)")`).join("\n")}
const { Effect } = require("effect")
const { Database } = require("@org/storage")
const { SqliteStorage } = require("@org/storage/sqlite")
Effect.runPromise(Database.use("count", (db) => db.selectFrom("t").selectAll().execute()).pipe(Effect.provide(SqliteStorage.layer({ filename: "pack-test.db" }))))
  .then((rows) => { if (rows.length !== 1) throw new Error("expected 1 row"); console.log("cjs storage read", rows.length, "row") })
  .catch((e) => { console.error(e); process.exit(1) })
let blocked = false
try { require("@org/storage/internal/config") } catch { blocked = true }
if (!blocked) { console.error("internal modules must not be importable"); process.exit(1) }
console.log("cjs: @org/storage/internal/* is blocked")
`
fs.writeFileSync(path.join(app, "check.mjs"), esm)
fs.writeFileSync(path.join(app, "check.cjs"), cjs)
process.stdout.write(run("node", ["check.mjs"], app))
process.stdout.write(run("node", ["check.cjs"], app))
fs.rmSync(work, { recursive: true, force: true })
console.log(`pack test passed for ${names.length} packages`)
