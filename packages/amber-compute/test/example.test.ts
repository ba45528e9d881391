/**
 * The README's program (examples/quickstart.ts) runs as a reader would run it and
 * prints what the README says it prints.
 */
import { describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "../../..")
const example = path.join(import.meta.dirname, "../examples/quickstart.ts")

describe("examples/quickstart.ts", () => {
  it("is the README's program, verbatim", () => {
    const readme = fs.readFileSync(path.join(import.meta.dirname, "../README.md"), "utf8")
    expect(readme).toContain(fs.readFileSync(example, "utf8").trim())
  })

  it("plans, materializes and follows the catalog with a trigger", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "amber-example-"))
    try {
      const run = () =>
        spawnSync(
          process.execPath,
          ["--conditions=@org/source", "--import", "tsx", example, path.join(dir, "media.db")],
          {
            cwd: root,
            encoding: "utf8"
          }
        )
      const first = run()
      expect(first.status, first.stderr).toBe(0)
      const out = first.stdout
      expect(out).toContain("title.artwork_set@1 (2 entities: 2 missing)")
      expect(out).toContain("└─ children [artworks] artwork.color@1 (3 entities: 3 missing)")
      expect(out).toContain("first run: 8 computed, 0 cached, 0 failed")
      // the new artwork of title-2 computes its tensor, its colour and title-2's set; the metadata edit nothing
      expect(out).toContain("trigger: changes 4..5: 3 computed for artwork-4, title-2")
      expect(out).toContain("title.artwork_set@1 (2 entities: 2 stored)")
      // the same program again on the same database: everything is stored, and the trigger's cursor
      // (kept in the database) is past the in-memory catalog's five changes, so no step runs
      const second = run()
      expect(second.status, second.stderr).toBe(0)
      expect(second.stdout).toContain("first run: 0 computed, 2 cached, 0 failed")
      expect(second.stdout).not.toContain("trigger:")
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
