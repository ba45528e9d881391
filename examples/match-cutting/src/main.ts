/**
 * `npm run match-cutting -- [--data DIR] [--videos N] [--pairs N]`: the most similar shots across a few generated
 * videos, written as a contact sheet. The data folder is reused: a second run computes no feature.
 */
import * as path from "node:path"
import { parseArgs } from "node:util"

const usage = `usage: npm run match-cutting -- [options]

  --data DIR     data folder: database, media, indexes, contact-sheet.png (default examples/match-cutting/data)
  --videos N     videos to generate, 2-12 (default 4)
  --pairs N      pairs on the contact sheet, 1-20 (default 4)
  --help         this text`

const fail = (message: string): never => {
  console.error(`match cutting: ${message}`)
  process.exit(1)
}

let values: Record<string, string | boolean | undefined> = {}
try {
  values = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    options: {
      data: { type: "string", default: path.resolve(import.meta.dirname, "..", "data") },
      videos: { type: "string", default: "4" },
      pairs: { type: "string", default: "4" },
      help: { type: "boolean", default: false }
    }
  }).values
} catch (error) {
  fail(`${(error as Error).message.split("\n")[0]} (see --help)`)
}
if (values.help) {
  console.log(usage)
  process.exit(0)
}
const whole = (name: string, min: number, max: number) => {
  const text = String(values[name])
  const n = /^\d+$/.test(text) ? Number(text) : NaN
  return n >= min && n <= max ? n : fail(`--${name} must be a whole number from ${min} to ${max}, got "${text}"`)
}
const videos = whole("videos", 2, 12)
const pairs = whole("pairs", 1, 20)
const data = path.resolve(String(values.data))

const { Cause, Effect, Exit } = await import("effect")
const { SqliteStorage } = await import("@org/storage/sqlite")
const { run } = await import("./matchCutting.js")
const fs = await import("node:fs")
fs.mkdirSync(data, { recursive: true })
const exit = await Effect.runPromiseExit(
  run({ data, videos, pairs, storage: SqliteStorage.layer({ filename: path.join(data, "match-cutting.db") }) })
)
if (Exit.isFailure(exit)) fail(String(Cause.squash(exit.cause)))
else {
  const r = exit.value
  console.log(`${r.videos.length} videos, ${r.shots} shots; computed this run: ${JSON.stringify(r.computed)}`)
  for (const p of r.pairs)
    console.log(
      `  ${p.left.video} shot ${p.left.index} ~ ${p.right.video} shot ${p.right.index}: cosine distance ${p.distance.toFixed(4)}`
    )
  console.log(`contact sheet: ${r.sheet}`)
}
