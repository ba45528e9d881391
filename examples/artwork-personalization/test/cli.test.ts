import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { checkWorld, MARKER, parse, prepareOutput } from "../src/cli.js"
import { runAsync } from "./run.js"

const root = path.resolve(import.meta.dirname, "..", "..", "..")
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "artwork-cli-"))

describe("demo flags", () => {
  it("parses every flag and checks it before any work", () => {
    const ok = parse(
      ["--titles", "12", "--members", "40", "--seed", "3", "--devices", "1", "--kind", "cpu", "--fresh", "--data", "d"],
      {}
    )
    expect(ok).toMatchObject({
      _tag: "Flags",
      flags: { titles: 12, members: 40, seed: 3, devices: 1, kind: "cpu", fresh: true, out: "d" }
    })
    expect(parse(["--out", "o"], {})).toMatchObject({ flags: { out: "o" } }) // the older name of --data
    expect(parse(["--pg", "postgres://h/db", "--workers", "3"], {})).toMatchObject({ flags: { workers: 3 } })
    expect(parse(["--workers", "2"], { DEMO_PG_URL: "postgres://h/db" })).toMatchObject({ flags: { workers: 2 } })
    expect(parse([], {})).toMatchObject({ flags: { workers: undefined } })
    expect(parse([], {})).toMatchObject({ flags: { titles: 60, members: 2000, seed: 7, devices: 2 } })
    expect(parse(["--help"], {})).toEqual({ _tag: "Help" })
    expect(parse(["--dry-run"], {})).toMatchObject({ flags: { dryRun: true } })
    const bad: Array<[ReadonlyArray<string>, RegExp]> = [
      [["--members", "abc"], /--members must be a whole number from 20 to 100000, got "abc"/],
      [["--titles", "4000"], /--titles must be from 6 to 500, got 4000/],
      [["--seed", "1.5"], /--seed must be a whole number from 0 to 1000000, got "1.5"/],
      [["--data", "a", "--out", "b"], /--data and --out are one option/],
      [["--kind", "tpu"], /--kind must be auto, webgpu or cpu, got "tpu"/],
      [["--pg", "mysql://x"], /--pg must be a postgres:\/\/ URL/],
      [
        ["--workers", "2"],
        /^--workers runs the mesh on the distributed executor, whose jobs live in PostgreSQL: give --pg URL too$/
      ],
      [["--pg", "postgres://h/db", "--workers", "0"], /--workers must be from 1 to 16, got 0/],
      [["--pg", "postgres://h/db", "--workers", "two"], /--workers must be a whole number from 1 to 16, got "two"/],
      [["--bogus"], /Unknown option '--bogus'/],
      [["stray"], /positional argument/]
    ]
    for (const [argv, message] of bad) {
      const parsed = parse(argv, {})
      expect(parsed._tag, argv.join(" ")).toBe("Invalid")
      expect(parsed._tag === "Invalid" && parsed.message).toMatch(message)
    }
  })

  it("reads DEMO_PG_URL and hides passwords in messages", () => {
    expect(parse([], { DEMO_PG_URL: "postgres://u@h/db" })).toMatchObject({ flags: { pg: "postgres://u@h/db" } })
    const bad = parse(["--pg", "http://user:secret@h/db"], {})
    expect(bad._tag === "Invalid" && bad.message).toContain("user:***@")
    expect(bad._tag === "Invalid" && bad.message).not.toContain("secret")
  })

  it("never writes into or deletes a folder it did not make; --fresh removes only its own files", () => {
    const user = tmp()
    fs.writeFileSync(path.join(user, "thesis.txt"), "mine")
    expect(prepareOutput(user, true)).toMatchObject({ _tag: "Invalid" })
    expect(fs.readFileSync(path.join(user, "thesis.txt"), "utf8")).toBe("mine")
    expect(fs.existsSync(path.join(user, MARKER))).toBe(false)

    const out = path.join(tmp(), "demo-out")
    expect(prepareOutput(out, false)).toEqual({ _tag: "Ready" })
    fs.writeFileSync(path.join(out, "demo.db"), "db")
    fs.mkdirSync(path.join(out, "media"))
    fs.writeFileSync(path.join(out, "notes.txt"), "a file the user put there")
    expect(prepareOutput(out, false)).toEqual({ _tag: "Ready" }) // reused as it is
    expect(fs.existsSync(path.join(out, "demo.db"))).toBe(true)
    expect(prepareOutput(out, true)).toEqual({ _tag: "Ready" })
    expect(fs.readdirSync(out).sort()).toEqual([MARKER, "notes.txt"])
  })

  it("`npm run demo -- <flags>` reaches the demo: --help, and one line for a bad flag", async () => {
    // spawned without blocking: a spawnSync under load starves vitest's worker RPC
    const help = (await runAsync("npm", ["run", "--silent", "demo", "--", "--help"], root)).stdout
    expect(help).toContain("usage: npm run demo -- [options]")
    expect(help).toMatch(/--workers N .*needs --pg/s)
    const bad = await runAsync("npm", ["run", "--silent", "demo", "--", "--members", "abc"], root)
    expect(bad.status).not.toBe(0)
    expect(
      bad.stderr
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("artwork demo:"))
    ).toEqual(['artwork demo: --members must be a whole number from 20 to 100000, got "abc"'])
    expect(bad.stdout).not.toContain("1/6 data") // no work started
  }, 180_000)

  it("a data folder holds one world: another seed or title count is refused, --fresh starts over", () => {
    const out = path.join(tmp(), "data")
    expect(prepareOutput(out, false)).toEqual({ _tag: "Ready" })
    expect(checkWorld(out, { seed: 7, titles: 60 })).toEqual({ _tag: "Ready" })
    expect(checkWorld(out, { seed: 7, titles: 60 })).toEqual({ _tag: "Ready" })
    const other = checkWorld(out, { seed: 3, titles: 60 })
    expect(other._tag === "Invalid" && other.message).toBe(
      `--data ${out} holds the world of --seed 7 --titles 60, not --seed 3 --titles 60: add --fresh to start over there, or give another --data folder`
    )
    expect(checkWorld(out, { seed: 7, titles: 24 })._tag).toBe("Invalid")
    expect(prepareOutput(out, true)).toEqual({ _tag: "Ready" }) // --fresh removes world.json with the rest
    expect(checkWorld(out, { seed: 3, titles: 24 })).toEqual({ _tag: "Ready" })
  })
})
