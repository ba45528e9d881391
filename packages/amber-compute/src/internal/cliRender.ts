/**
 * How the `amber` command shows events: a progress bar (cli-progress) when stderr
 * is a terminal, plain lines otherwise; results and status on stdout (or JSON).
 */
import cliProgress from "cli-progress"
import type * as DistributedExecutor from "../DistributedExecutor.js"
import type { FeatureStatus, RunResult } from "../Resolver.js"
import type { RunEvent } from "../RunEvent.js"
import type { WorkerEvent } from "./distributedWorker.js"

/** What the commands print through. */
export interface Output {
  readonly event: (event: RunEvent) => void
  readonly worker: (event: WorkerEvent) => void
  readonly result: (result: RunResult) => void
  readonly status: (features: ReadonlyArray<FeatureStatus>, queue: DistributedExecutor.Status | undefined) => void
  readonly line: (text: string) => void
  readonly close: () => void
}

const ms = (x: number) => (x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${Math.round(x)} ms`)

/** A renderer on the process's streams. */
export const makeRenderer = (options: {
  readonly json: boolean
  readonly tty?: boolean
  readonly out?: NodeJS.WritableStream
  readonly err?: NodeJS.WritableStream
}): Output => {
  const out = options.out ?? process.stdout
  const err = options.err ?? process.stderr
  const tty = options.tty ?? (process.stderr.isTTY === true && !process.env.CI)
  const print = (stream: NodeJS.WritableStream, text: string) => void stream.write(`${text}\n`)
  let bar: cliProgress.SingleBar | undefined
  let done = 0
  const advance = (n: number, what: string) => {
    done += n
    if (bar) bar.update(done, { what })
  }
  const event = (e: RunEvent) => {
    if (options.json) return
    switch (e._tag) {
      case "Planned": {
        const todo = Object.values(e.counts).reduce((n, c) => n + c.missing + c["stale-version"] + c["stale-input"], 0)
        if (tty && todo > 0) {
          bar?.stop()
          done = 0
          bar = new cliProgress.SingleBar(
            {
              stream: err,
              format: `${e.feature} [{bar}] {value}/{total} values | {what} | {duration_formatted}`,
              hideCursor: true,
              clearOnComplete: false
            },
            cliProgress.Presets.shades_classic
          )
          bar.start(todo, 0, { what: "planned" })
        } else {
          print(
            err,
            `planned ${e.run}: ${e.feature} on ${e.entities} entities, ${todo} value(s) to compute in ${e.tasks} task(s)`
          )
        }
        return
      }
      case "Started":
        if (!tty) print(err, `started ${e.feature}: ${e.entities} entities`)
        return
      case "Computed":
        if (tty) advance(e.entities, `computed ${e.feature}`)
        else print(err, `computed ${e.feature}: ${e.entities} value(s) in ${ms(e.ms)}`)
        return
      case "Cached":
        if (tty) advance(e.entities, `cached ${e.feature}`)
        else print(err, `cached ${e.feature}: ${e.entities} value(s)`)
        return
      case "Failed":
        if (tty) advance(1, `failed ${e.feature} ${e.entity}`)
        else print(err, `failed ${e.feature} ${e.entity}: ${e.error._tag}: ${e.error.message}`)
        return
      case "WaitingForWorkers":
        return print(
          err,
          `waiting for workers: ${e.tasks} task(s) of ${e.run} queued, no live worker for ${ms(e.waitedMs)} (start \`amber worker\` on the same config)`
        )
      case "Finished":
        bar?.stop()
        bar = undefined
        print(err, `finished ${e.run}: ${e.computed} computed, ${e.cached} cached, ${e.failed} failed in ${ms(e.ms)}`)
    }
  }
  const worker = (e: WorkerEvent) => {
    switch (e._tag) {
      case "WorkerStarted":
        return print(err, `worker ${e.worker} started (concurrency ${e.concurrency})`)
      case "TaskStarted":
        return print(
          err,
          `task ${e.task.run}:${e.task.seq} ${e.task.feature} (${e.task.entities.length} entities), attempt ${e.attempt}`
        )
      case "TaskDone":
        return print(err, `task ${e.task.run}:${e.task.seq} done in ${ms(e.ms)}`)
      case "TaskFailed":
        return print(
          err,
          `task ${e.task.run}:${e.task.seq} attempt ${e.attempt} failed${e.final ? " (no attempts left)" : ""}: ${e.error}`
        )
      case "WorkersReaped":
        return print(err, `released the tasks of dead worker(s) ${e.dead.join(", ")}`)
    }
  }
  const result = (r: RunResult) => {
    if (options.json) return print(out, JSON.stringify({ ...r, failed: r.failed.map((f) => ({ ...f })) }))
    print(
      out,
      `${r.feature}: ${r.entities} entities, ${r.computed} computed, ${r.cached} cached, ${r.failed.length} failed (${r.run}, ${ms(r.ms)})`
    )
    for (const f of r.failed.slice(0, 20))
      print(out, `  failed ${f.feature}@${f.version} ${f.entity}: ${f._tag}: ${f.message}`)
    if (r.failed.length > 20) print(out, `  ... ${r.failed.length - 20} more`)
  }
  const status = (features: ReadonlyArray<FeatureStatus>, queue: DistributedExecutor.Status | undefined) => {
    if (options.json) return print(out, JSON.stringify({ features, queue }, null, 2))
    for (const f of features) {
      print(
        out,
        `${f.feature}: ${f.entities} entities, ${f.stored} stored, ${f.missing} missing, ${f.blocked} blocked, ${f.failed} failed` +
          (f.lastError ? `; last error (${f.lastError.entity}): ${f.lastError._tag}: ${f.lastError.message}` : "")
      )
    }
    if (queue) {
      const s = queue.byState
      print(
        out,
        `tasks: ${s.pending} pending, ${s.queued} queued, ${s.running} running, ${s.retrying} retrying, ${s.done} done, ${s.failed} failed`
      )
      for (const t of queue.failed)
        print(out, `  failed task ${t.run}:${t.seq} ${t.feature} after ${t.attempts} attempt(s): ${t.lastError}`)
      print(
        out,
        `workers: ${queue.workers.length}${queue.workers.map((w) => ` ${w.id} (${w.host} pid ${w.pid})`).join(",")}`
      )
    }
  }
  return {
    event,
    worker,
    result,
    status,
    line: (text) => print(err, text),
    close: () => {
      bar?.stop()
      bar = undefined
    }
  }
}
