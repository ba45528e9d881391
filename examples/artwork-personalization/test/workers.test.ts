import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { runAsync } from "./run.js"

const root = path.resolve(import.meta.dirname, "..", "..", "..")
const pgUrl = process.env.ORG_TEST_PG_URL || undefined
// the smallest world the flags allow, one epoch: the point is where the mesh runs, not what the model learns
const SMALL = ["--titles", "6", "--members", "20", "--epochs", "1", "--devices", "1", "--kind", "cpu"]

interface Summary {
  readonly features: Record<string, { computed: number; reused: number; failed: number }>
  readonly distributed?: { workers: number; tasksPerWorker: ReadonlyArray<number> }
}

const demo = async (args: ReadonlyArray<string>) => {
  const r = await runAsync("npm", ["run", "--silent", "demo", "--", ...args], root)
  expect(r.status, `${args.join(" ")}\n${r.stdout}\n${r.stderr}`).toBe(0)
  return r.stdout
}

if (!pgUrl) {
  console.warn("[example] ORG_TEST_PG_URL is not set: the --workers (distributed executor) run is skipped")
  describe.skip("npm run demo -- --pg URL --workers N", () => it("skipped", () => undefined))
} else {
  describe("npm run demo -- --pg URL --workers N", () => {
    it("runs the mesh on 2 worker processes it starts and stops: the first run computes, the second nothing", async () => {
      // a database of its own, so the demo's fixed schemas (artwork_demo, artwork_demo_jobs) meet no one else's
      const database = `artwork_workers_${process.pid}_${Date.now().toString(36)}`
      const admin = new pg.Client({ connectionString: pgUrl })
      await admin.connect()
      await admin.query(`create database ${database}`)
      const url = new URL(pgUrl)
      url.pathname = `/${database}`
      const data = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "artwork-workers-")), "data")
      try {
        const args = ["--pg", url.href, "--workers", "2", ...SMALL, "--data", data]
        const first = await demo(args)
        expect(first).toContain("started 2 worker process(es) for the feature mesh")
        const s1 = JSON.parse(fs.readFileSync(path.join(data, "summary.json"), "utf8")) as Summary
        expect(s1.distributed?.workers).toBe(2)
        expect(s1.distributed!.tasksPerWorker.reduce((a, b) => a + b, 0)).toBeGreaterThan(0) // the workers did the work
        for (const [label, c] of Object.entries(s1.features)) {
          expect(c.computed, label).toBeGreaterThan(0)
          expect(c.failed, label).toBe(0)
        }

        await demo(args)
        const s2 = JSON.parse(fs.readFileSync(path.join(data, "summary.json"), "utf8")) as Summary
        for (const [label, c] of Object.entries(s2.features)) {
          expect(c.computed, label).toBe(0)
          expect(c.reused, label).toBe(s1.features[label]!.computed)
        }
        expect(s2.distributed!.tasksPerWorker.reduce((a, b) => a + b, 0)).toBe(0)

        // the workers are gone: no process of this checkout's worker script is left
        const script = path.join(root, "examples/artwork-personalization/src/worker.ts")
        const ps = spawnSync("ps", ["-eo", "args"], { encoding: "utf8" }).stdout
        expect(ps.split("\n").filter((l) => l.includes(script))).toEqual([])
      } finally {
        await admin.query(`drop database if exists ${database} with (force)`)
        await admin.end()
      }
    }, 1_800_000)
  })
}
