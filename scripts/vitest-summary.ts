import type { Reporter, RunnerTestFile, Task } from "vitest"

const count = (tasks: ReadonlyArray<Task>, acc = { passed: 0, failed: 0, skipped: 0 }) => {
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

/** Prints one plain closing line: `Tests: N passed, N failed, N skipped`. */
export default class SummaryReporter implements Reporter {
  onFinished(files: ReadonlyArray<RunnerTestFile> = [], errors: ReadonlyArray<unknown> = []) {
    const c = count(files)
    const failed = c.failed + files.filter((f) => f.result?.state === "fail" && f.tasks.length === 0).length
    console.log(
      `\nTests: ${c.passed} passed, ${failed} failed, ${c.skipped} skipped${errors.length ? ` (${errors.length} unhandled errors)` : ""}`
    )
  }
}
