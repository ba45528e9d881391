import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import sharp from "sharp"
import { SqliteStorage } from "@org/storage/sqlite"
import { run } from "../src/matchCutting.js"

const root = path.resolve(import.meta.dirname, "..", "..", "..")

describe("match cutting", () => {
  it.live(
    "finds the shots that match across videos, draws the contact sheet, and computes nothing on a second run",
    () =>
      Effect.gen(function* () {
        const data = fs.mkdtempSync(path.join(os.tmpdir(), "match-cutting-"))
        const storage = SqliteStorage.layer({ filename: path.join(data, "m.db") })
        const first = yield* run({ data, storage, videos: 3, pairs: 2 })
        expect(first.computed).toEqual({ "video.shots@1": 3, "video.keyframes@1": 3 })
        expect(first.shots).toBe(9) // three cuts between three test patterns per video
        // videos 1 and 2 share two test patterns: those shots are the best matches, near-identical
        expect(first.pairs).toHaveLength(2)
        for (const p of first.pairs) {
          expect(p.left.video).not.toBe(p.right.video)
          expect(p.distance).toBeLessThan(0.01)
        }
        const meta = yield* Effect.promise(() => sharp(first.sheet).metadata())
        expect([meta.width, meta.height]).toEqual([8 * 3 + 96 * 2, 8 + 2 * (64 + 8)])
        const second = yield* run({ data, storage, videos: 3, pairs: 2 })
        expect(second.computed).toEqual({})
        expect(second.pairs).toEqual(first.pairs)
      }),
    300_000
  )

  it("the README's commands: a run, --help, and a bad flag in one line", () => {
    const out = execFileSync(
      "npm",
      ["run", "--silent", "match-cutting", "--", "--data", "/tmp/match-cutting", "--videos", "3", "--pairs", "2"],
      { cwd: root, encoding: "utf8" }
    )
    expect(out).toContain("3 videos, 9 shots")
    expect(out).toContain("contact sheet: /tmp/match-cutting/contact-sheet.png")
    const help = execFileSync("npm", ["run", "--silent", "match-cutting", "--", "--help"], {
      cwd: root,
      encoding: "utf8"
    })
    expect(help).toContain("usage: npm run match-cutting -- [options]")
    let stderr = ""
    try {
      execFileSync("npm", ["run", "--silent", "match-cutting", "--", "--videos", "40"], {
        cwd: root,
        encoding: "utf8",
        stdio: "pipe"
      })
    } catch (e) {
      stderr = String((e as { stderr: string }).stderr)
    }
    expect(stderr.trim()).toBe('match cutting: --videos must be a whole number from 2 to 12, got "40"')
  }, 300_000)
})
