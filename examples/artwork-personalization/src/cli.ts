/**
 * The demo's command line: every flag is parsed and checked here, before any work starts, and the output folder
 * is prepared without ever deleting anything the demo did not create.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { parseArgs } from "node:util"

export interface Flags {
  /** The data folder (`--data`, or its older name `--out`). */
  readonly out: string
  readonly seed: number
  readonly pg: string | undefined
  /** Worker processes of the distributed executor (`--workers`, only with `--pg`); undefined computes in process. */
  readonly workers: number | undefined
  readonly titles: number
  readonly members: number
  readonly epochs: number
  readonly devices: number
  readonly kind: "auto" | "webgpu" | "cpu"
  readonly fresh: boolean
  readonly verbose: boolean
  /** Check the flags, print what would run, stop. */
  readonly dryRun: boolean
}

export type Parsed =
  | { readonly _tag: "Flags"; readonly flags: Flags }
  | { readonly _tag: "Help" }
  | { readonly _tag: "Invalid"; readonly message: string }

/** The schema of the distributed executor's jobs (`--workers`), beside the demo's own schema. */
export const JOBS_SCHEMA = "artwork_demo_jobs"

export const DEFAULT_OUT = path.resolve(import.meta.dirname, "..", "data")

/** The most titles the generator makes. */
export const MAX_TITLES = 500

export const usage = `usage: npm run demo -- [options]

  --data DIR       data folder: database, media, derivatives, indexes, report.html, summary.json
                   (default ${path.relative(process.cwd(), DEFAULT_OUT) || DEFAULT_OUT}); reused between runs
                   (--out DIR is the same)
  --fresh          start over: remove the demo's own files in --data (or its PostgreSQL schema) first
  --pg URL         run on PostgreSQL (schema artwork_demo) instead of SQLite    [env DEMO_PG_URL]
  --workers N      compute the feature mesh on amber-compute's distributed executor (jobs on PostgreSQL,
                   schema ${JOBS_SCHEMA}) with N worker processes the demo starts and stops, 1-16; needs --pg
                   (default: computed in the demo's own process)
  --titles N       titles, 6-${MAX_TITLES} (default 60)
  --members N      synthetic members, 20-100000 (default 2000)
  --seed N         seed of the generated world, 0-1000000 (default 7)
  --epochs N       training epochs, 1-1000 (default 8)
  --devices N      data-parallel devices, 1-8 (default 2)
  --kind KIND      auto | webgpu | cpu (default auto: WebGPU where an adapter exists, else CPU)
  --verbose        on failure, print the whole cause chain
  --dry-run        check the flags, print what would run, and stop (touches nothing)
  --help           this text

environment: DEMO_PG_URL (same as --pg), EGL_PLATFORM=surfaceless (WebGPU on Mesa without a GPU),
             ORG_TRAINER_WEBGPU_BACKEND, JASPER_FFMPEG / JASPER_FFPROBE (ffmpeg binaries)`

const integer = (name: string, text: string, min: number, max: number): number | string => {
  if (!/^\d+$/.test(text)) return `--${name} must be a whole number from ${min} to ${max}, got "${text}"`
  const n = Number(text)
  return n < min || n > max ? `--${name} must be from ${min} to ${max}, got ${n}` : n
}

/** Parses and checks every flag; nothing else happens here. */
export const parse = (argv: ReadonlyArray<string>, env: NodeJS.ProcessEnv): Parsed => {
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        data: { type: "string" },
        out: { type: "string" },
        seed: { type: "string", default: "7" },
        pg: { type: "string" },
        workers: { type: "string" },
        titles: { type: "string", default: "60" },
        members: { type: "string", default: "2000" },
        epochs: { type: "string", default: "8" },
        devices: { type: "string", default: "2" },
        kind: { type: "string", default: "auto" },
        fresh: { type: "boolean", default: false },
        verbose: { type: "boolean", default: false },
        "dry-run": { type: "boolean", default: false },
        help: { type: "boolean", default: false }
      }
    }).values
  } catch (error) {
    return { _tag: "Invalid", message: `${(error as Error).message.split("\n")[0]} (see --help)` }
  }
  if (values.help) return { _tag: "Help" }
  const numbers = {
    titles: integer("titles", values.titles as string, 6, MAX_TITLES),
    members: integer("members", values.members as string, 20, 100_000),
    seed: integer("seed", values.seed as string, 0, 1_000_000),
    epochs: integer("epochs", values.epochs as string, 1, 1000),
    devices: integer("devices", values.devices as string, 1, 8)
  }
  for (const v of Object.values(numbers)) if (typeof v === "string") return { _tag: "Invalid", message: v }
  const workers = values.workers === undefined ? undefined : integer("workers", values.workers as string, 1, 16)
  if (typeof workers === "string") return { _tag: "Invalid", message: workers }
  const kind = values.kind as string
  if (kind !== "auto" && kind !== "webgpu" && kind !== "cpu")
    return { _tag: "Invalid", message: `--kind must be auto, webgpu or cpu, got "${kind}"` }
  const pg = (values.pg as string | undefined) ?? (env.DEMO_PG_URL || undefined)
  if (pg !== undefined) {
    let url: URL | undefined
    try {
      url = new URL(pg)
    } catch {
      url = undefined
    }
    if (url === undefined || (url.protocol !== "postgres:" && url.protocol !== "postgresql:"))
      return { _tag: "Invalid", message: `--pg must be a postgres:// URL, got "${redact(pg)}"` }
  }
  if (workers !== undefined && pg === undefined)
    return {
      _tag: "Invalid",
      message: "--workers runs the mesh on the distributed executor, whose jobs live in PostgreSQL: give --pg URL too"
    }
  if (values.data !== undefined && values.out !== undefined && values.data !== values.out)
    return { _tag: "Invalid", message: "--data and --out are one option (--out is its older name); give one folder" }
  const out = (values.data as string | undefined) ?? (values.out as string | undefined) ?? DEFAULT_OUT
  if (out.trim() === "") return { _tag: "Invalid", message: "--data must name a folder" }
  return {
    _tag: "Flags",
    flags: {
      out,
      seed: numbers.seed as number,
      pg,
      workers,
      titles: numbers.titles as number,
      members: numbers.members as number,
      epochs: numbers.epochs as number,
      devices: numbers.devices as number,
      kind,
      fresh: values.fresh === true,
      verbose: values.verbose === true,
      dryRun: values["dry-run"] === true
    }
  }
}

/** A URL with its password hidden, for messages. */
export const redact = (url: string): string => url.replace(/\/\/([^:/@]+):[^@/]*@/, "//$1:***@")

/** The file that marks a folder as the demo's own; without it the demo writes nothing into a non-empty folder. */
export const MARKER = ".artwork-demo"

/** What the demo creates in its output folder, and so all that `--fresh` may remove. */
export const OWN_FILES = [
  "demo.db",
  "demo.db-wal",
  "demo.db-shm",
  "demo.db-journal",
  "media",
  "derivatives",
  "indexes",
  "frames",
  "charts",
  "report.html",
  "summary.json",
  "world.json"
] as const

/** The file that records which world (seed, titles) the media and catalog in a data folder were made for. */
export const WORLD = "world.json"

/**
 * A data folder holds one world: its media and catalog are generated from the seed and the number of titles, so a
 * run asking for another world is refused (with --fresh it starts over). Members can change between runs.
 */
export const checkWorld = (
  out: string,
  world: { readonly seed: number; readonly titles: number }
): { readonly _tag: "Ready" } | { readonly _tag: "Invalid"; readonly message: string } => {
  const file = path.join(out, WORLD)
  if (fs.existsSync(file)) {
    let held: { seed?: unknown; titles?: unknown } = {}
    try {
      held = JSON.parse(fs.readFileSync(file, "utf8")) as typeof held
    } catch {
      held = {}
    }
    if (held.seed !== world.seed || held.titles !== world.titles)
      return {
        _tag: "Invalid",
        message:
          `--data ${out} holds the world of --seed ${String(held.seed)} --titles ${String(held.titles)}, not ` +
          `--seed ${world.seed} --titles ${world.titles}: add --fresh to start over there, or give another --data folder`
      }
  }
  try {
    fs.writeFileSync(file, JSON.stringify(world) + "\n")
  } catch (error) {
    return { _tag: "Invalid", message: `--data ${out} cannot be written: ${(error as Error).message}` }
  }
  return { _tag: "Ready" }
}

/**
 * Makes `out` ready: a new or empty folder becomes the demo's (marked), a folder with the demo's mark (or holding
 * nothing but the demo's files) is reused, anything else is refused. With `fresh`, only the demo's own files are removed from a folder that carries its mark.
 */
export const prepareOutput = (
  out: string,
  fresh: boolean
): { readonly _tag: "Ready" } | { readonly _tag: "Invalid"; readonly message: string } => {
  const marker = path.join(out, MARKER)
  if (fs.existsSync(out)) {
    if (!fs.statSync(out).isDirectory()) return { _tag: "Invalid", message: `--data ${out} is a file, not a folder` }
    const entries = fs.readdirSync(out)
    // a folder holding only what the demo writes is an earlier demo's output (made before the mark existed)
    const demoLike = entries.every((e) => (OWN_FILES as ReadonlyArray<string>).includes(e))
    if (entries.length > 0 && !entries.includes(MARKER) && !demoLike)
      return {
        _tag: "Invalid",
        message: `--data ${out} is not empty and was not made by the demo; name a new or empty folder`
      }
    if (fresh) for (const name of OWN_FILES) fs.rmSync(path.join(out, name), { recursive: true, force: true })
  }
  try {
    fs.mkdirSync(out, { recursive: true })
    fs.writeFileSync(marker, "This folder was made by the artwork-personalization demo; --fresh removes its files.\n")
  } catch (error) {
    return { _tag: "Invalid", message: `--data ${out} cannot be written: ${(error as Error).message}` }
  }
  return { _tag: "Ready" }
}
