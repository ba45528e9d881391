import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { TestMedia } from "@org/jasper"

const files = (fx: TestMedia.Fixtures): Array<string> => [
  fx.poster,
  fx.posterB,
  fx.logo,
  fx.cuts,
  fx.ntsc24,
  fx.tone,
  fx.srt,
  fx.vtt,
  fx.rotated,
  fx.vfr,
  fx.offset,
  fx.lagged,
  fx.exifRotated,
  fx.animated,
  fx.markup,
  ...Object.values(fx.broken)
]
const digest = (f: string) => crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex")

it.effect("generates the same bytes every time, and every fixture is distinct and small", () =>
  Effect.gen(function* () {
    const dirs = [0, 1].map(() => fs.mkdtempSync(path.join(os.tmpdir(), "jasper-testmedia-")))
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })))
    )
    const [a, b] = yield* Effect.forEach(dirs, (d) => TestMedia.generate(d))
    const da = files(a!).map(digest)
    const db = files(b!).map(digest)
    expect(da).toEqual(db)
    // only the empty file and nothing else share a hash
    expect(new Set(da).size).toBe(da.length)
    for (const f of files(a!)) expect(fs.statSync(f).size).toBeLessThan(200_000)
    expect(fs.statSync(a!.broken.empty).size).toBe(0)
    expect(fs.statSync(a!.broken.truncatedJpeg).size).toBe(Math.floor(fs.statSync(a!.poster).size / 2))
  }).pipe(Effect.scoped)
)

it.effect("fails with a TestMediaError naming the file when it cannot write", () =>
  Effect.gen(function* () {
    const error = yield* Effect.flip(TestMedia.poster("/proc/no-such-dir/poster.jpg"))
    expect(error).toMatchObject({ _tag: "TestMediaError", file: "/proc/no-such-dir/poster.jpg" })
  })
)
