/**
 * `npm run demo`: the artwork-personalization pipeline on an embedded SQLite file
 * (or PostgreSQL with `--pg <url>` / `DEMO_PG_URL`), writing an HTML report.
 *
 *   npm run demo -- --members 800 --epochs 20 --devices 2 --kind auto
 */
import { Effect, type Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { PostgresStorage } from "@org/storage/pg"
import { SqliteStorage } from "@org/storage/sqlite"
import { run } from "./pipeline.js"
import { write } from "./report.js"

const { values } = parseArgs({
  options: {
    out: { type: "string", default: path.resolve(import.meta.dirname, "..", "out") },
    pg: { type: "string", default: process.env.DEMO_PG_URL ?? "" },
    titles: { type: "string", default: "8" },
    members: { type: "string", default: "400" },
    epochs: { type: "string", default: "12" },
    devices: { type: "string", default: "2" },
    kind: { type: "string", default: "auto" },
    help: { type: "boolean", default: false }
  }
})
if (values.help) {
  console.log(
    "usage: npm run demo -- [--out DIR] [--pg URL] [--titles N] [--members N] [--epochs N] [--devices N] [--kind auto|webgpu|cpu]"
  )
  process.exit(0)
}
const kind = values.kind as "auto" | "webgpu" | "cpu"
if (!["auto", "webgpu", "cpu"].includes(kind)) throw new Error(`--kind must be auto, webgpu or cpu, got ${values.kind}`)
const out = path.resolve(values.out)
fs.rmSync(out, { recursive: true, force: true })
fs.mkdirSync(out, { recursive: true })

const storage = values.pg
  ? PostgresStorage.layer({ url: values.pg, schema: "artwork_demo" })
  : SqliteStorage.layer({ filename: path.join(out, "demo.db") })

const started = Date.now()
const summary = await Effect.runPromise(
  run({
    out,
    storage: storage as Layer.Layer<any, unknown>,
    titles: Number(values.titles),
    members: Number(values.members),
    epochs: Number(values.epochs),
    devices: { count: Number(values.devices), kind }
  })
)
const report = await write(summary, out)
console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s on ${summary.storage}`)
console.log(`report: ${path.relative(process.cwd(), report)}`)
