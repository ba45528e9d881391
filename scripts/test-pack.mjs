// Proves that what a user installs works. From an unbuilt copy of the repository (tracked and untracked, not
// ignored files; dependencies installed without install scripts), packs every package (its `prepack` builds it),
// checks each tarball's contents and runs publint and attw on it, installs all tarballs with the peers each package
// declares into a fresh project outside the repository, imports every entry point as ESM and CJS (and checks that
// `internal/*` is blocked), then runs every `packages/<pkg>/test-pack/*.{mjs,cjs}` there, each in a fresh `node`
// process (a `// @repeat N` line among the first lines runs it N times).
//
//   npm run test:pack                      everything
//   npm run test:pack -- trainer marken    only the smoke programs whose path contains one of the words
//   TEST_PACK_KEEP=1 npm run test:pack     keep the temporary folder (it is always kept on failure)
import { execFileSync, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { collect as readmePrograms } from "./readme-examples.mjs"

const root = path.resolve(import.meta.dirname, "..")
const work = fs.mkdtempSync(path.join(os.tmpdir(), "org-pack-"))
const clone = path.join(work, "clone")
const tarballs = path.join(work, "tarballs")
const app = path.join(work, "app")
const only = process.argv.slice(2)
const started = Date.now()
const failures = []

const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)}s`
const step = (text) => console.log(`\n=== ${text} (${elapsed()})`)
const readJson = (file) => JSON.parse(fs.readFileSync(file, "utf8"))
const tail = (text, lines = 25) => text.trimEnd().split("\n").slice(-lines).join("\n")
/** Runs a command, returns its stdout; on failure throws with the command, its exit and the tail of its output. */
const run = (cmd, args, cwd, options = {}) => {
  try {
    return execFileSync(cmd, args, {
      cwd,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      maxBuffer: 256 * 1024 * 1024,
      ...options
    })
  } catch (e) {
    const how = e.signal ? `signal ${e.signal}` : `exit code ${e.status}`
    throw new Error(
      `${cmd} ${args.join(" ")} (in ${cwd}) failed with ${how}:\n${tail(`${e.stdout ?? ""}${e.stderr ?? ""}`)}`
    )
  }
}
const fail = (pkg, what, message) => {
  failures.push({ pkg, what, message })
  console.error(`✗ ${pkg}: ${what}\n${message.replace(/^/gm, "    ")}`)
}

// 0. Every TypeScript/JavaScript block of a README is its examples/ file, verbatim (run here further down).
const readme = readmePrograms(root)
if (readme.problems.length > 0) {
  fail("README", "blocks and their files", readme.problems.join("\n"))
}

// 1. An unbuilt copy of the repository.
step(`copying the repository (no build outputs, no node_modules) into ${clone}`)
const listed = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
  cwd: root,
  encoding: "utf8"
})
let copied = 0
for (const file of new Set(listed.split("\0").filter(Boolean))) {
  const from = path.join(root, file)
  if (!fs.existsSync(from) || !fs.statSync(from).isFile()) continue // deleted in the work tree, or a submodule
  fs.mkdirSync(path.dirname(path.join(clone, file)), { recursive: true })
  fs.copyFileSync(from, path.join(clone, file))
  copied++
}
const stray = ["packages", "examples"].flatMap((dir) =>
  fs.existsSync(path.join(clone, dir))
    ? fs.readdirSync(path.join(clone, dir)).filter((d) => fs.existsSync(path.join(clone, dir, d, "dist")))
    : []
)
if (stray.length > 0) throw new Error(`build output was copied into the clean copy: ${stray.join(", ")}`)
console.log(`${copied} files`)

// The build tools: a copy of the repository's installed node_modules when there is one (CI has just run `npm ci`;
// its workspace links are relative, so in the copy they point at the copy's unbuilt packages), else a fresh
// `npm ci --ignore-scripts` (natives are compiled where the tarballs are installed).
if (fs.existsSync(path.join(root, "node_modules", ".package-lock.json")) && !process.env.TEST_PACK_FRESH_INSTALL) {
  step("copying the installed node_modules (build tools only)")
  run("cp", ["-a", path.join(root, "node_modules"), path.join(clone, "node_modules")], root)
  for (const dir of ["packages", "examples"]) {
    for (const d of fs.existsSync(path.join(root, dir)) ? fs.readdirSync(path.join(root, dir)) : []) {
      const nested = path.join(root, dir, d, "node_modules")
      if (fs.existsSync(nested) && fs.existsSync(path.join(clone, dir, d)))
        run("cp", ["-a", nested, path.join(clone, dir, d, "node_modules")], root)
    }
  }
  const links = fs.readdirSync(path.join(clone, "node_modules", "@org"))
  for (const name of links) {
    const target = fs.realpathSync(path.join(clone, "node_modules", "@org", name))
    if (!target.startsWith(clone)) throw new Error(`node_modules/@org/${name} points outside the copy: ${target}`)
  }
} else {
  step("npm ci --ignore-scripts (build tools only; natives are compiled where the tarballs are installed)")
  run("npm", ["ci", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund"], clone)
}

// The release flow's first step in the copy: `changeset version` turns the pending changesets into each package's
// CHANGELOG.md and bumps the versions (the repository itself is untouched; `npm run release` does it for real).
step("changeset version (in the copy: CHANGELOG.md from the pending changesets)")
const pending = fs.readdirSync(path.join(clone, ".changeset")).filter((f) => f.endsWith(".md") && f !== "README.md")
if (pending.length > 0) {
  console.log(`${pending.length} pending changesets`)
  run(path.join(clone, "node_modules", ".bin", "changeset"), ["version"], clone)
}

// 2. Pack every published package in dependency order (a package's types may come from the packages it uses).
const packages = fs
  .readdirSync(path.join(clone, "packages"))
  .map((d) => ({ folder: d, dir: path.join(clone, "packages", d) }))
  .filter(({ dir }) => fs.existsSync(path.join(dir, "package.json")))
  .map((p) => ({ ...p, pkg: readJson(path.join(p.dir, "package.json")) }))
  .filter(({ pkg }) => pkg.private !== true)
const byName = new Map(packages.map((p) => [p.pkg.name, p]))
const ordered = []
const visit = (p, trail) => {
  if (ordered.includes(p)) return
  if (trail.includes(p)) throw new Error(`dependency cycle: ${[...trail, p].map((q) => q.pkg.name).join(" -> ")}`)
  const { dependencies = {}, peerDependencies = {}, devDependencies = {} } = p.pkg
  for (const name of Object.keys({ ...dependencies, ...peerDependencies, ...devDependencies })) {
    if (byName.has(name)) visit(byName.get(name), [...trail, p])
  }
  ordered.push(p)
}
for (const p of packages) visit(p, [])

const forbidden = [
  [/^package\/(src|test|tests|test-pack|bench)\//, "source-only or test folder"],
  [/^package\/[^/]*tsconfig[^/]*\.json$/, "tsconfig"],
  [/^package\/(tsup|vitest|vite|eslint)\.config\./, "build or test config"],
  [/\.tsbuildinfo$|\.pack-backup$/, "build leftover"],
  [/\.test\.[cm]?[jt]s$/, "test file"]
]
/** Every file an exports map points at (`null` entries block a path and point at nothing). */
const targets = (value) =>
  typeof value === "string"
    ? [value]
    : value && typeof value === "object"
      ? Object.values(value).flatMap((v) => targets(v))
      : []

fs.mkdirSync(tarballs)
for (const p of ordered) {
  const name = p.pkg.name
  step(`npm pack ${name} (prepack builds it)`)
  if (fs.existsSync(path.join(p.dir, "dist"))) throw new Error(`${name}: dist/ exists before packing`)
  let out
  try {
    const stdout = run("npm", ["pack", "--json", "--pack-destination", tarballs], p.dir)
    out = JSON.parse(stdout.slice(stdout.indexOf("[")))[0]
  } catch (e) {
    fail(name, "npm pack", e.message)
    continue
  }
  p.tarball = path.join(tarballs, out.filename)
  const files = run("tar", ["-tzf", p.tarball], tarballs).split("\n").filter(Boolean)
  const shipped = JSON.parse(run("tar", ["-xzOf", p.tarball, "package/package.json"], tarballs))
  const problems = []
  for (const f of ["LICENSE", "README.md", "CHANGELOG.md", "package.json"]) {
    if (!files.includes(`package/${f}`)) problems.push(`no ${f}`)
  }
  if (!files.some((f) => f.endsWith(".d.ts"))) problems.push("no .d.ts")
  if (!files.some((f) => f.endsWith(".d.cts"))) problems.push("no .d.cts")
  for (const f of files) for (const [re, what] of forbidden) if (re.test(f)) problems.push(`ships ${what}: ${f}`)
  for (const t of new Set([...targets(shipped.exports), shipped.main, shipped.module, shipped.types])) {
    if (typeof t === "string" && !t.includes("*") && !files.includes(`package/${t.replace(/^\.\//, "")}`)) {
      problems.push(`package.json points at ${t}, which is not in the tarball`)
    }
  }
  if (JSON.stringify(shipped.exports ?? {}).includes("@org/source")) {
    problems.push("the shipped exports still carry the @org/source condition (src/ is not shipped)")
  }
  if (fs.existsSync(path.join(p.dir, "package.json.pack-backup")))
    problems.push("postpack did not restore package.json")
  const license = fs.readFileSync(path.join(p.dir, "LICENSE"), "utf8")
  if (shipped.license !== "MIT" || !license.startsWith("MIT License")) problems.push("license is not MIT")
  if (problems.length > 0) fail(name, `tarball ${out.filename}`, problems.join("\n"))
  for (const [tool, args] of [
    ["publint", ["run", "--strict", p.tarball]],
    ["attw", [p.tarball, "--format", "table-flipped", "--profile", "node16"]]
  ]) {
    try {
      run(path.join(clone, "node_modules", ".bin", tool), args, tarballs)
    } catch (e) {
      fail(name, `${tool} on the tarball`, e.message)
    }
  }
  console.log(
    `${out.filename}: ${out.entryCount} files, ${(out.size / 1024).toFixed(0)} kB` +
      (problems.length === 0 ? ", contents ok, publint and attw ok" : "")
  )
}
const packed = ordered.filter((p) => p.tarball)

// 3. A fresh project with every tarball and the peers each package declares, at the versions the repository pins.
step("installing the tarballs and their peers into a fresh project (compiles the native modules)")
const rootPkg = readJson(path.join(clone, "package.json"))
const lock = readJson(path.join(clone, "package-lock.json"))
const peers = new Map()
for (const { pkg } of packed) {
  for (const peer of Object.keys(pkg.peerDependencies ?? {})) {
    if (byName.has(peer)) continue
    const version =
      pkg.devDependencies?.[peer] ?? rootPkg.devDependencies?.[peer] ?? lock.packages?.[`node_modules/${peer}`]?.version
    if (version === undefined)
      throw new Error(`${pkg.name}: no version of its peer ${peer} is pinned in the repository`)
    peers.set(peer, version)
  }
}
fs.mkdirSync(app)
fs.writeFileSync(
  path.join(app, "package.json"),
  `${JSON.stringify({ name: "pack-test-app", private: true, version: "1.0.0" }, null, 2)}\n`
)
const specs = [...[...peers].map(([n, v]) => `${n}@${v}`), ...packed.map((p) => p.tarball)]
console.log(`peers: ${[...peers].map(([n, v]) => `${n}@${v}`).join(" ")}`)
{
  const install = spawnSync(
    "npm",
    ["install", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund", ...specs],
    { cwd: app, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 }
  )
  const output = `${install.stdout}${install.stderr}`
  if (install.status !== 0) throw new Error(`npm install failed (exit ${install.status}):\n${tail(output)}`)
  // a declared peer range that the pinned versions do not satisfy shows as "ERESOLVE overriding peer dependency"
  const eresolve = output.split("\n").filter((l) => /ERESOLVE/.test(l))
  if (eresolve.length > 0) fail("install", "npm install printed ERESOLVE warnings", tail(output, 60))
  else console.log("npm install: no ERESOLVE warnings")
}
// npm 11 blocks dependencies' install scripts until the project approves them, as a user's project would.
try {
  run("npm", ["install-scripts", "approve", "--all"], app)
} catch {
  // an npm without install-script approval runs every install script
}
run("npm", ["rebuild"], app)

// 4. Every entry point as ESM and CJS; internal modules blocked; every exported error class (at the top or in a
// namespace) has the name it is exported under, as `X.name`, and its instances' `name` and `_tag` are that name too
// (the bundler renames a class that collides with a namespace of the same name, `_StorageError`, unless it keeps names).
step("ESM and CJS imports of every entry point")
const errorNames = `
const checkErrorNames = (entry, m) => {
  const found = []
  const visit = (key, value, at) => {
    if (typeof value !== "function" || !(value.prototype instanceof Error) || !key.endsWith("Error")) return
    const where = entry + ": " + at
    if (value.name !== key) throw new Error(where + ".name is " + JSON.stringify(value.name) + ", not " + JSON.stringify(key))
    let instance
    try {
      instance = new value({ message: "test" })
    } catch {
      // a Schema.TaggedError refuses fields it does not declare (its tag is on the class), a class with its own
      // constructor may need its fields
    }
    // a Data.TaggedError's tag is on its instances, a Schema.TaggedError's on the class too
    const tag = instance ? instance._tag : value._tag
    if (tag !== key && (instance !== undefined || tag !== undefined)) {
      throw new Error(where + ": _tag is " + JSON.stringify(tag) + ", not " + JSON.stringify(key))
    }
    if (instance && instance.name !== key) {
      throw new Error(where + ": new " + key + "(...).name is " + JSON.stringify(instance.name))
    }
    found.push(at)
  }
  for (const [key, value] of Object.entries(m)) {
    visit(key, value, key)
    if (value !== null && typeof value === "object") {
      for (const [inner, v] of Object.entries(value)) visit(inner, v, key + "." + inner)
    }
  }
  return found.length
}
`
const checkModule = (p) => {
  const name = p.pkg.name
  const entries = Object.entries(p.pkg.exports ?? { ".": null })
    .filter(([key, value]) => value !== null && !key.includes("*") && key !== "./package.json")
    .map(([key]) => (key === "." ? name : `${name}/${key.slice(2)}`))
  const esm = `
const entries = ${JSON.stringify(entries)}
${errorNames}
for (const e of entries) {
  const m = await import(e)
  if (Object.keys(m).length === 0) throw new Error(e + " has no exports")
  console.log("esm", e, Object.keys(m).length, "exports, error classes named as exported:", checkErrorNames(e, m))
}
try { await import(${JSON.stringify(`${name}/internal/index`)}); throw new Error("imported") } catch (e) {
  if (e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw new Error("${name}/internal/* must be blocked, got " + e.message)
}
`
  const cjs = `
${errorNames}
for (const e of ${JSON.stringify(entries)}) {
  const m = require(e)
  if (Object.keys(m).length === 0) throw new Error(e + " has no exports")
  console.log("cjs", e, Object.keys(m).length, "exports, error classes named as exported:", checkErrorNames(e, m))
}
try { require(${JSON.stringify(`${name}/internal/index`)}); throw new Error("required") } catch (e) {
  if (e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw new Error("${name}/internal/* must be blocked, got " + e.message)
}
console.log("cjs ${name}/internal/* is blocked")
`
  for (const [ext, source] of [
    ["mjs", esm],
    ["cjs", cjs]
  ]) {
    const file = path.join(app, `import-${p.folder}.${ext}`)
    fs.writeFileSync(file, source)
    try {
      process.stdout.write(run("node", [file], app))
    } catch (e) {
      fail(name, `${ext === "mjs" ? "ESM import" : "CJS require"}`, e.message)
    }
  }
}
for (const p of packed) checkModule(p)

// 5. Each package's smoke programs, each run in a fresh process.
const env = {
  ...process.env,
  EGL_PLATFORM: process.env.EGL_PLATFORM ?? "surfaceless",
  NODE_OPTIONS: "" // nothing of the caller's loaders or conditions: plain node, as a user runs it
}
const timeoutMs = Number(process.env.TEST_PACK_TIMEOUT_S ?? 300) * 1000
const runProgram = (file, label) =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { cwd: app, env, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    const timer = setTimeout(() => {
      stderr += `\n[test-pack] ${label} still running after ${timeoutMs / 1000}s: killed (a hang)`
      child.kill("SIGKILL")
    }, timeoutMs)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })

const programs = packed
  .flatMap((p) => {
    const dir = path.join(p.dir, "test-pack")
    if (!fs.existsSync(dir)) return []
    return fs
      .readdirSync(dir)
      .filter((f) => /\.(mjs|cjs)$/.test(f))
      .sort()
      .map((f) => ({ p, source: path.join(dir, f), rel: `packages/${p.folder}/test-pack/${f}` }))
  })
  .filter(({ rel }) => only.length === 0 || only.some((w) => rel.includes(w)))
step(`${programs.length} smoke programs from packages/*/test-pack`)
const noProgram = packed.filter((p) => !programs.some((q) => q.p === p)).map((p) => p.pkg.name)
if (only.length === 0 && noProgram.length > 0) console.log(`no smoke program yet: ${noProgram.join(", ")}`)
for (const { p, source, rel } of programs) {
  const target = path.join(app, "test-pack", p.folder, path.basename(source))
  fs.mkdirSync(path.dirname(target), { recursive: true })
  fs.copyFileSync(source, target)
  const head = fs.readFileSync(source, "utf8").split("\n").slice(0, 5).join("\n")
  const repeat = Number(/^\/\/\s*@repeat\s+(\d+)/m.exec(head)?.[1] ?? 1)
  for (let i = 1; i <= repeat; i++) {
    const label = `${rel}${repeat > 1 ? ` run ${i}/${repeat}` : ""}`
    const t0 = Date.now()
    const r = await runProgram(target, label)
    const seconds = ((Date.now() - t0) / 1000).toFixed(1)
    if (r.code === 0) {
      const lines = r.stdout.trim().split("\n").filter(Boolean)
      console.log(`✓ ${p.pkg.name} ${label} (${seconds}s)${lines.length ? `\n    ${lines.join("\n    ")}` : ""}`)
    } else {
      const how = r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`
      fail(p.pkg.name, `${label}: ${how} after ${seconds}s`, tail(`${r.stdout}\n--- stderr ---\n${r.stderr}`))
    }
  }
}

// 6. The README programs: type-checked against the installed tarballs' types (tsc, noEmit), then each run twice in its
// own folder (a reader runs a program again: it must not fail the second time). A program that mentions
// DATABASE_URL gets a fresh PostgreSQL database when ORG_TEST_PG_URL is set; one that says it "Needs DATABASE_URL"
// is skipped with a message without it.
const examples = readme.examples.filter(({ rel }) => only.length === 0 || only.some((w) => rel.includes(w)))
if (examples.length > 0) {
  step(`${examples.length} README programs: tsc against the tarballs' types, then each run twice`)
  const readmeDir = path.join(app, "readme")
  for (const { file, pkg } of examples) {
    const dir = path.join(readmeDir, pkg)
    fs.mkdirSync(dir, { recursive: true })
    fs.copyFileSync(file, path.join(dir, path.basename(file)))
  }
  for (const { file, pkg } of readme.examples) {
    // a program may load a sibling (amber.config.mjs): copy every example of its folder
    const target = path.join(readmeDir, pkg, path.basename(file))
    if (fs.existsSync(path.join(readmeDir, pkg)) && !fs.existsSync(target)) fs.copyFileSync(file, target)
  }
  fs.writeFileSync(path.join(readmeDir, "package.json"), `${JSON.stringify({ type: "module", private: true })}\n`)
  fs.writeFileSync(
    path.join(readmeDir, "tsconfig.json"),
    `${JSON.stringify(
      {
        compilerOptions: {
          target: "ES2022",
          lib: ["ES2023"],
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ["node"],
          typeRoots: [path.join(clone, "node_modules", "@types")]
        },
        include: ["**/*.ts"]
      },
      null,
      2
    )}\n`
  )
  try {
    run(path.join(clone, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.json"], readmeDir)
    console.log(`✓ tsc: ${examples.filter((e) => e.file.endsWith(".ts")).length} TypeScript README programs type-check`)
  } catch (e) {
    fail("README", "tsc on the README programs", e.message)
  }
  const pgUrl = process.env.ORG_TEST_PG_URL
  const tsx = path.join(clone, "node_modules", "tsx", "dist", "loader.mjs")
  for (const { file, rel, pkg } of examples) {
    const source = fs.readFileSync(file, "utf8")
    const dir = path.join(readmeDir, pkg)
    const target = path.join(dir, path.basename(file))
    const usesPg = source.includes("DATABASE_URL")
    if (/Needs DATABASE_URL/i.test(source) && !pgUrl) {
      if (process.env.CI) fail("README", rel, "ORG_TEST_PG_URL is not set under CI: this program must run")
      else console.log(`SKIPPED ${rel}: it needs PostgreSQL and ORG_TEST_PG_URL is not set`)
      continue
    }
    let database
    const programEnv = { ...env }
    delete programEnv.DATABASE_URL
    if (usesPg && pgUrl) {
      database =
        `readme_${process.pid}_${pkg.replace(/\W/g, "_")}_${path.basename(file).replace(/\W/g, "_")}`.toLowerCase()
      const admin = `const { default: pg } = await import("pg"); const c = new pg.Client({ connectionString: process.argv[1] }); await c.connect(); await c.query(process.argv[2]); await c.end()`
      run("node", ["--input-type=module", "-e", admin, pgUrl, `create database "${database}"`], app)
      const url = new URL(pgUrl)
      url.pathname = `/${database}`
      programEnv.DATABASE_URL = url.href
    }
    try {
      for (let i = 1; i <= 2; i++) {
        const t0 = Date.now()
        const r = spawnSync(process.execPath, [...(file.endsWith(".ts") ? ["--import", tsx] : []), target], {
          cwd: dir,
          env: programEnv,
          encoding: "utf8",
          timeout: timeoutMs,
          maxBuffer: 64 * 1024 * 1024
        })
        const seconds = ((Date.now() - t0) / 1000).toFixed(1)
        if (r.status !== 0) {
          fail(
            "README",
            `${rel} run ${i}/2: exit ${r.status ?? r.signal} after ${seconds}s`,
            tail(`${r.stdout}\n--- stderr ---\n${r.stderr}`)
          )
          break
        }
        const last = r.stdout.trim().split("\n").filter(Boolean).slice(-2).join(" | ")
        console.log(`✓ ${rel} run ${i}/2${usesPg && pgUrl ? " (PostgreSQL)" : ""} (${seconds}s): ${last.slice(0, 200)}`)
      }
    } finally {
      if (database) {
        const admin = `const { default: pg } = await import("pg"); const c = new pg.Client({ connectionString: process.argv[1] }); await c.connect(); await c.query(process.argv[2]); await c.end()`
        run(
          "node",
          ["--input-type=module", "-e", admin, pgUrl, `drop database if exists "${database}" with (force)`],
          app
        )
      }
    }
  }
}

step("done")
if (failures.length > 0) {
  console.error(`\ntest:pack FAILED (${failures.length}), work folder kept: ${work}`)
  for (const f of failures) console.error(`  ✗ ${f.pkg}: ${f.what}`)
  process.exit(1)
}
if (process.env.TEST_PACK_KEEP) console.log(`work folder kept: ${work}`)
else fs.rmSync(work, { recursive: true, force: true })
console.log(
  `test:pack passed: ${packed.length} packages, ${programs.length} smoke programs, ${examples.length} README programs, ${elapsed()}`
)
