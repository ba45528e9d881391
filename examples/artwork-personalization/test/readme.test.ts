/**
 * Every `npm run demo` form written in the root README and in the example's README, run for real at a small size:
 * the test adds `--titles 6 --members 20 --epochs 1` (the last of a repeated flag wins) and puts `--data` in a
 * temporary folder, one per backend, reused by the forms in turn (the READMEs say so). PostgreSQL forms run on a
 * database of the test's own at ORG_TEST_PG_URL (skipped, with a message, when it is unset).
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { runAsync } from "./run.js"

const root = path.resolve(import.meta.dirname, "..", "..", "..")
const pgUrl = process.env.ORG_TEST_PG_URL || undefined
const SMALL = ["--titles", "6", "--members", "20", "--epochs", "1"]

/** The `npm run demo` forms of a README: lines of its code blocks and inline code spans, comments dropped. */
const formsOf = (markdown: string): ReadonlyArray<string> => {
  const found: Array<string> = []
  let inBlock = false
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) {
      inBlock = !inBlock
      continue
    }
    if (inBlock) {
      const m = /^(?:npm ci && )?(npm run demo\b.*)$/.exec(line.replace(/\s+#.*$/, "").trim())
      if (m) found.push(m[1]!)
    } else for (const m of line.matchAll(/`(?:npm ci && )?(npm run demo\b[^`]*)`/g)) found.push(m[1]!.trim())
  }
  return [...new Set(found.map((f) => f.replace(/\s+/g, " ")))]
}

const readmes = ["README.md", "examples/artwork-personalization/README.md"]
const forms = [...new Set(readmes.flatMap((f) => formsOf(fs.readFileSync(path.join(root, f), "utf8"))))]

/** The flags of a form (what follows `npm run demo --`). */
const flagsOf = (form: string): Array<string> => {
  const words = form.split(" ").slice(3) // npm run demo
  return words[0] === "--" ? words.slice(1) : words
}
const valueOf = (flags: ReadonlyArray<string>, name: string) => {
  const i = flags.indexOf(name)
  return i < 0 ? undefined : flags[i + 1]
}
/** The form's flags with its folder and database replaced by the test's own, and the small size added. */
const realize = (flags: ReadonlyArray<string>, data: string, url: string | undefined) => {
  const out = flags.map((f, i) =>
    flags[i - 1] === "--data" || flags[i - 1] === "--out" ? data : flags[i - 1] === "--pg" ? url! : f
  )
  return [...out, ...(out.includes("--data") || out.includes("--out") ? [] : ["--data", data]), ...SMALL]
}
/** Forms that make another world run first (they start the folder), then those that start over, then the rest. */
const order = (flags: ReadonlyArray<string>) =>
  valueOf(flags, "--seed") !== undefined ? 0 : flags.includes("--fresh") ? 1 : 2

interface Summary {
  readonly features: Record<string, { entities: number; computed: number; reused: number; failed: number }>
  readonly distributed?: { workers: number; tasksPerWorker: ReadonlyArray<number> }
}

const runForms = async (group: ReadonlyArray<string>, data: string, url: string | undefined) => {
  let world: string | undefined // the seed of the world the folder holds
  for (const form of [...group].sort((a, b) => order(flagsOf(a)) - order(flagsOf(b)))) {
    const flags = flagsOf(form)
    const args = realize(flags, data, url)
    const r = await runAsync("npm", ["run", "--silent", "demo", "--", ...args], root)
    expect(r.status, `${form}\n${r.stdout}\n${r.stderr}`).toBe(0)
    expect(r.stdout, form).toMatch(/^report: .*report\.html$/m)
    expect(r.stdout, form).toMatch(/^ {2}(warm|cold-start) titles: learned /m) // the replay findings
    const summary = JSON.parse(fs.readFileSync(path.join(data, "summary.json"), "utf8")) as Summary
    const seed = valueOf(flags, "--seed") ?? "7"
    const reused = world === seed && !flags.includes("--fresh")
    for (const [label, c] of Object.entries(summary.features)) {
      expect(c.failed, `${form}: ${label}`).toBe(0)
      // a run on the folder's own world computes nothing; the first run of a world (or --fresh) computes it all
      expect(c.computed, `${form}: ${label}`).toBe(reused ? 0 : c.entities)
    }
    if (flags.includes("--workers"))
      expect(summary.distributed?.workers, form).toBe(Number(valueOf(flags, "--workers")))
    world = seed
  }
}

describe("every `npm run demo` form of the READMEs, run at a small size", () => {
  const local = forms.filter((f) => !f.includes("--pg") && !f.includes("--help"))
  const onPg = forms.filter((f) => f.includes("--pg"))

  it("finds the forms", () => {
    expect(forms).toContain("npm run demo")
    expect(forms).toContain("npm run demo -- --help") // run by cli.test.ts
    expect(local.length).toBeGreaterThanOrEqual(3)
    expect(onPg.length).toBeGreaterThanOrEqual(2)
  })

  it("on SQLite, one data folder", async () => {
    const data = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "artwork-readme-")), "data")
    try {
      await runForms(local, data, undefined)
    } finally {
      fs.rmSync(path.dirname(data), { recursive: true, force: true })
    }
  }, 1_800_000)

  it.skipIf(!pgUrl)(
    "on PostgreSQL, a database of the test's own",
    async () => {
      const database = `example_readme_${process.pid}_${Date.now().toString(36)}`
      const admin = new pg.Client({ connectionString: pgUrl })
      await admin.connect()
      await admin.query(`create database ${database}`)
      const url = new URL(pgUrl!)
      url.pathname = `/${database}`
      const data = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "artwork-readme-pg-")), "data")
      try {
        await runForms(onPg, data, url.href)
      } finally {
        await admin.query(`drop database if exists ${database} with (force)`)
        await admin.end()
        fs.rmSync(path.dirname(data), { recursive: true, force: true })
      }
    },
    900_000
  )
  if (!pgUrl) console.warn("[example] ORG_TEST_PG_URL is not set: the README's --pg forms are skipped")
})
