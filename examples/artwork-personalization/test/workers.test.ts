import { describe, expect, it } from "@effect/vitest"
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
  readonly features: Record<string, { entities: number; computed: number; reused: number; failed: number }>
  readonly distributed?: {
    workers: number
    tasksPerWorker: ReadonlyArray<number>
    lostWorkers: ReadonlyArray<{ worker: number; how: string }>
  }
}

/**
 * Runs the demo with --verbose (the workers' lines show), and kills workers as it goes: `kill` sees each worker line
 * and answers the workers to kill now (by number).
 */
const demo = async (args: ReadonlyArray<string>, kill?: (line: string) => ReadonlyArray<number>) => {
  const pids = new Map<number, number>()
  const killed = new Set<number>()
  const r = await runAsync("npm", ["run", "--silent", "demo", "--", ...args], root, (line) => {
    const started = /^ {2}worker (\d+): started pid (\d+)$/.exec(line)
    if (started) pids.set(Number(started[1]), Number(started[2]))
    if (!kill || !/^ {2}worker \d+: /.test(line)) return
    for (const w of kill(line))
      if (!killed.has(w) && pids.has(w)) {
        killed.add(w)
        process.kill(pids.get(w)!, "SIGKILL")
      }
  })
  // the demo leaves no worker behind, killed or not
  for (const pid of pids.values()) expect(() => process.kill(pid, 0), `worker pid ${pid} is gone`).toThrow()
  return { ...r, killed }
}

const summaryOf = (data: string) => JSON.parse(fs.readFileSync(path.join(data, "summary.json"), "utf8")) as Summary

if (!pgUrl) {
  console.warn("[example] ORG_TEST_PG_URL is not set: the --workers (distributed executor) runs are skipped")
  describe.skip("npm run demo -- --pg URL --workers N", () => it("skipped", () => undefined))
} else {
  describe("npm run demo -- --pg URL --workers N", () => {
    it("workers killed mid-run: one line when none is left, the rerun computes only what is missing and finishes on the worker left; --fresh starts over, removing only its own", async () => {
      // a database of its own, so the demo's fixed schemas (artwork_demo, artwork_demo_jobs) meet no one else's
      const database = `artwork_workers_${process.pid}_${Date.now().toString(36)}`
      const admin = new pg.Client({ connectionString: pgUrl })
      await admin.connect()
      await admin.query(`create database ${database}`)
      const url = new URL(pgUrl)
      url.pathname = `/${database}`
      const data = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "artwork-workers-")), "data")
      try {
        const args = ["--pg", url.href, "--workers", "2", ...SMALL, "--data", data, "--verbose"]

        // 1. both workers killed once the first task is done: the run fails in one line, keeping what was stored
        let firstDone = false
        const first = await demo(args, (line) => {
          if (/: done /.test(line)) firstDone = true
          return firstDone ? [1, 2] : []
        })
        expect(first.killed.size, first.stderr).toBe(2)
        expect(first.status, first.stderr).toBe(1)
        const failures = first.stderr.split("\n").filter((l) => l.startsWith("artwork demo:"))
        expect(failures, first.stderr).toHaveLength(1)
        expect(failures[0]).toMatch(
          /^artwork demo: WorkersLostError: every worker process ended before the feature mesh was done \(worker \d was killed by SIGKILL, worker \d was killed by SIGKILL\); .*run the demo again/
        )
        expect(first.stderr).toMatch(/worker \d: was killed by SIGKILL; 1 worker\(s\) left take over its task/)

        // 2. the rerun computes only what is missing; the first worker to start a task is killed then, and the run
        // finishes on the other (which takes the task over once the killed worker's heartbeat is stale)
        let victim: number | undefined
        const second = await demo(args, (line) => {
          const task = /^ {2}worker (\d+): task /.exec(line)
          if (task && victim === undefined) victim = Number(task[1])
          return victim === undefined ? [] : [victim]
        })
        expect(second.status, `${second.stdout}\n${second.stderr}`).toBe(0)
        expect(second.killed).toEqual(new Set([victim]))
        expect(second.stderr).toContain(`worker ${victim}: was killed by SIGKILL; 1 worker(s) left take over its task`)
        const s2 = summaryOf(data)
        expect(s2.distributed?.lostWorkers).toMatchObject([{ worker: victim, how: "was killed by SIGKILL" }])
        let computed = 0
        let entities = 0
        for (const [label, c] of Object.entries(s2.features)) {
          expect(c.failed, label).toBe(0)
          expect(c.computed + c.reused, label).toBe(c.entities)
          computed += c.computed
          entities += c.entities
        }
        expect(computed).toBeGreaterThan(0) // what the first run left
        expect(computed).toBeLessThan(entities) // and only that: what it stored is reused

        // 3. --fresh with --workers: drops the demo's own schemas and files, nothing else, and computes it all again
        fs.writeFileSync(path.join(data, "notes.txt"), "the user's")
        const other = new pg.Client({ connectionString: url.href })
        await other.connect()
        await other.query(
          "create schema example_keep; create table example_keep.t (x int); insert into example_keep.t values (1)"
        )
        const third = await demo([...args.filter((a) => a !== "--verbose"), "--fresh"])
        expect(third.status, `${third.stdout}\n${third.stderr}`).toBe(0)
        const s3 = summaryOf(data)
        for (const [label, c] of Object.entries(s3.features)) expect(c.computed, label).toBe(c.entities)
        expect(s3.distributed!.tasksPerWorker.reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
        expect(s3.distributed!.lostWorkers).toEqual([])
        expect(fs.readFileSync(path.join(data, "notes.txt"), "utf8")).toBe("the user's")
        expect((await other.query("select x from example_keep.t")).rows).toEqual([{ x: 1 }])
        await other.end()
      } finally {
        await admin.query(`drop database if exists ${database} with (force)`)
        await admin.end()
        fs.rmSync(path.dirname(data), { recursive: true, force: true })
      }
    }, 2_700_000)
  })
}
