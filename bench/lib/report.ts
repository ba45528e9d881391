/**
 * Shared helpers for the side-by-side benchmarks: timing, a printed table, and
 * `bench/results/<package>.json` as a list of `{ metric, value, unit, baseline, ratio }`.
 */
import * as fs from "node:fs"
import * as path from "node:path"

export interface Row {
  readonly metric: string
  readonly value: number
  readonly unit: string
  /** The raw library's figure measured in the same run (same unit), or null when there is none. */
  readonly baseline: number | null
  /** value / baseline (for times, >1 means we are slower; for throughputs, <1 means slower). */
  readonly ratio: number | null
  readonly note?: string
  /** The goal for the ratio (e.g. `>= 1.5x`), printed next to it. */
  readonly goal?: string
}

export const row = (
  metric: string,
  value: number,
  unit: string,
  baseline: number | null,
  note?: string,
  goal?: string
): Row => ({
  metric,
  value: round(value),
  unit,
  baseline: baseline === null ? null : round(baseline),
  ratio: baseline === null || baseline === 0 ? null : round(value / baseline, 3),
  ...(note ? { note } : {}),
  ...(goal ? { goal } : {})
})

const round = (x: number, digits = 3) => Number(x.toFixed(digits))

/** Runs `f` `repeat` times after `warmup` runs and returns the median wall time in milliseconds. */
export const time = async (f: () => unknown, options: { repeat?: number; warmup?: number } = {}): Promise<number> => {
  const { repeat = 5, warmup = 1 } = options
  for (let i = 0; i < warmup; i++) await f()
  const times: Array<number> = []
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now()
    await f()
    times.push(performance.now() - t0)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]!
}

export const report = (pkg: string, rows: ReadonlyArray<Row>): void => {
  console.log(`\n${pkg}`)
  console.table(
    rows.map((r) => ({
      metric: r.metric,
      value: r.value,
      unit: r.unit,
      baseline: r.baseline ?? "",
      ratio: r.ratio ?? "",
      ...(rows.some((x) => x.goal) ? { goal: r.goal ?? "" } : {}),
      ...(r.note ? { note: r.note } : {})
    }))
  )
  const dir = path.resolve(import.meta.dirname, "..", "results")
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `${pkg}.json`)
  // a partial run (--only) replaces its own rows and keeps the others of the last full run
  const partial = process.argv.includes("--only") && fs.existsSync(file)
  const kept: Array<Row> = partial ? JSON.parse(fs.readFileSync(file, "utf8")) : []
  const fresh = new Map(rows.map((r) => [r.metric, r]))
  const merged = partial
    ? [...kept.map((r) => fresh.get(r.metric) ?? r), ...rows.filter((r) => !kept.some((k) => k.metric === r.metric))]
    : rows
  fs.writeFileSync(file, JSON.stringify(merged, null, 2) + "\n")
  console.log(
    `wrote ${path.relative(process.cwd(), file)}${partial ? ` (${rows.length} rows of this --only run merged into the last results)` : ""}`
  )
}
