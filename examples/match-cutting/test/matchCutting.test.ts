import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import sharp from "sharp"
import { SqliteStorage } from "@org/storage/sqlite"
import { run } from "../src/matchCutting.js"
import { runAsync } from "../../artwork-personalization/test/run.js"

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

  it("every `npm run match-cutting` form of the READMEs runs (one data folder), --help, and a bad flag in one line", async () => {
    const forms = new Set<string>()
    for (const readme of ["README.md", "examples/match-cutting/README.md"])
      for (const line of fs.readFileSync(path.join(root, readme), "utf8").split("\n"))
        for (const m of line.matchAll(/(?:^|`)(npm run match-cutting\b[^`#]*)/g)) forms.add(m[1]!.trim())
    expect([...forms]).toContain("npm run match-cutting")
    expect([...forms]).toContain("npm run match-cutting -- --help")
    // the forms run in one folder of the test's own, in the order the READMEs give them: what an earlier form made is
    // reused (more videos compute only the new ones)
    const data = fs.mkdtempSync(path.join(os.tmpdir(), "match-cutting-readme-"))
    let videos = 0
    for (const form of [...forms].filter((f) => !f.includes("--help"))) {
      const words = form.split(" ").slice(3) // npm run match-cutting
      const flags = words[0] === "--" ? words.slice(1) : words
      const args = flags.map((f, i) => (flags[i - 1] === "--data" ? data : f))
      if (!args.includes("--data")) args.push("--data", data)
      const r = await runAsync("npm", ["run", "--silent", "match-cutting", "--", ...args], root)
      expect(r.status, `${form}\n${r.stderr}`).toBe(0)
      const at = args.indexOf("--videos")
      const n = at < 0 ? 4 : Number(args[at + 1]) // 4: the default
      expect(r.stdout, form).toContain(`${n} videos, ${n * 3} shots`)
      const computed = n - videos
      expect(r.stdout, form).toContain(
        `computed this run: ${computed > 0 ? JSON.stringify({ "video.shots@1": computed, "video.keyframes@1": computed }) : "{}"}`
      )
      expect(r.stdout, form).toContain(`contact sheet: ${path.join(data, "contact-sheet.png")}`)
      videos = Math.max(videos, n)
    }
    fs.rmSync(data, { recursive: true, force: true })
    const help = await runAsync("npm", ["run", "--silent", "match-cutting", "--", "--help"], root)
    expect(help.stdout).toContain("usage: npm run match-cutting -- [options]")
    const bad = await runAsync("npm", ["run", "--silent", "match-cutting", "--", "--videos", "40"], root)
    expect(bad.status).toBe(1)
    expect(bad.stderr.trim()).toBe('match cutting: --videos must be a whole number from 2 to 12, got "40"')
  }, 300_000)
})
