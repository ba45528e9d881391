import type { Reporter, RunnerTestFile, Task } from "vitest"

/** The message a conformance suite's name carries when its PostgreSQL adapter is skipped (`StorageTesting.adapters`). */
const PG_SKIPPED = "is not set: PostgreSQL cases are skipped"

interface Counts {
  passed: number
  failed: number
  skipped: number
}

const count = (tasks: ReadonlyArray<Task>, acc: Counts = { passed: 0, failed: 0, skipped: 0 }) => {
  for (const t of tasks) {
    if (t.type === "suite") {
      count(t.tasks, acc)
      continue
    }
    const state = t.result?.state
    if (state === "pass") acc.passed++
    else if (state === "fail") acc.failed++
    else acc.skipped++
  }
  return acc
}

/** Every test of a tree with the names of the suites above it. */
const tests = (tasks: ReadonlyArray<Task>, path: ReadonlyArray<string> = []): Array<ReadonlyArray<string>> =>
  tasks.flatMap((t) => (t.type === "suite" ? tests(t.tasks, [...path, t.name]) : [[...path, t.name]]))

/**
 * The PostgreSQL cases of a file that did not run, and how many of them vitest already counts as skipped. A
 * conformance suite skipped for PostgreSQL registers one placeholder case where its SQLite-file twin registers
 * them all, so the file's cases on `sqlite-file` (which the PostgreSQL adapter would have run too) stand for the
 * PostgreSQL cases; the placeholders are already counted as skipped.
 */
const pgNotRun = (file: RunnerTestFile): { readonly cases: number; readonly uncounted: number } => {
  const all = tests(file.tasks)
  const placeholders = all.filter((p) => p.some((name) => name.includes(PG_SKIPPED))).length
  if (placeholders === 0) return { cases: 0, uncounted: 0 }
  const twins = all.filter((p) => p.some((name) => name.includes("sqlite-file"))).length
  return { cases: Math.max(twins, placeholders), uncounted: Math.max(0, twins - placeholders) }
}

/**
 * Prints one plain closing line: `Tests: N passed, N failed, N skipped`. PostgreSQL cases that did not run because
 * `ORG_TEST_PG_URL` is unset count as skipped, and the line says so.
 */
export default class SummaryReporter implements Reporter {
  onFinished(files: ReadonlyArray<RunnerTestFile> = [], errors: ReadonlyArray<unknown> = []) {
    const c = count(files)
    const failed = c.failed + files.filter((f) => f.result?.state === "fail" && f.tasks.length === 0).length
    const pg = files
      .map(pgNotRun)
      .reduce((a, b) => ({ cases: a.cases + b.cases, uncounted: a.uncounted + b.uncounted }), {
        cases: 0,
        uncounted: 0
      })
    const pgNote = pg.cases > 0 ? ` (${pg.cases} PostgreSQL cases did not run: ORG_TEST_PG_URL is not set)` : ""
    console.log(
      `\nTests: ${c.passed} passed, ${failed} failed, ${c.skipped + pg.uncounted} skipped${pgNote}${errors.length ? ` (${errors.length} unhandled errors)` : ""}`
    )
  }
}
