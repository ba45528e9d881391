import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Jasper } from "@org/jasper"
import { choosePair } from "../src/internal/process.js"

/** A folder holding executables (shell scripts) with these names. */
const binDir = (names: ReadonlyArray<string>) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "jasper-bin-"))
  for (const n of names) fs.writeFileSync(path.join(dir, n), "#!/bin/sh\nexit 0\n", { mode: 0o755 })
  return dir
}

it.effect("prefers an ffmpeg + ffprobe pair on PATH, never mixes a lone system binary with a bundled one", () =>
  Effect.gen(function* () {
    const both = binDir(["ffmpeg", "ffprobe"])
    const lone = binDir(["ffmpeg"])
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => [both, lone].forEach((d) => fs.rmSync(d, { recursive: true, force: true })))
    )
    const system = yield* Effect.promise(() => choosePair({ PATH: both }))
    expect(system.ffmpeg).toEqual({ path: path.join(both, "ffmpeg"), source: "path" })
    expect(system.ffprobe).toEqual({ path: path.join(both, "ffprobe"), source: "path" })
    const fallback = yield* Effect.promise(() => choosePair({ PATH: lone }))
    expect(fallback.ffmpeg.source).toBe("bundled")
    expect(fallback.ffprobe.source).toBe("bundled")
    expect(fallback.ffmpeg.path).toContain("@ffmpeg-installer")
    expect(fallback.notes.join(" ")).toContain("without ffprobe")
    // one variable alone takes its partner from the same folder
    const env = yield* Effect.promise(() => choosePair({ PATH: "", JASPER_FFMPEG: path.join(both, "ffmpeg") }))
    expect(env.ffprobe).toEqual({ path: path.join(both, "ffprobe"), source: "env" })
    const explicit = yield* Effect.promise(() =>
      choosePair({ PATH: both, JASPER_FFMPEG: "/x/ffmpeg", JASPER_FFPROBE: "/y/ffprobe" })
    )
    expect([explicit.ffmpeg.path, explicit.ffprobe.path]).toEqual(["/x/ffmpeg", "/y/ffprobe"])
  }).pipe(Effect.scoped)
)

it.effect("diagnostics name the binaries in use with their versions", () =>
  Effect.gen(function* () {
    const d = yield* Jasper.diagnostics
    expect(d.ffmpeg.path).not.toBe("")
    expect(d.ffmpeg.version).toMatch(/\S/)
    expect(d.ffprobe.version).toMatch(/\S/)
    expect(d.ffmpeg.year).toBeGreaterThan(2000)
    expect(d.sameBuild).toBe(d.ffmpeg.version === d.ffprobe.version)
    if (!d.sameBuild) expect(d.notes.join(" ")).toContain("different builds")
    if (process.env.JASPER_FFMPEG) expect(d.ffmpeg).toMatchObject({ path: process.env.JASPER_FFMPEG, source: "env" })
  })
)
