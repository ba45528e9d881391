import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Reader, TestMedia } from "@org/jasper"

/** Generated media in a temporary folder, removed when the layer is released. */
export class Fixtures extends Context.Tag("test/Fixtures")<Fixtures, TestMedia.Fixtures>() {}

export const FixturesLive: Layer.Layer<Fixtures> = Layer.scoped(
  Fixtures,
  Effect.gen(function* () {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "jasper-fixtures-"))),
      (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true }))
    )
    return yield* TestMedia.generate(dir).pipe(Effect.orDie)
  })
)

/** Fixtures plus a reader confined to their folder (with a memory store). */
export const withReader = (memory = new Reader.MemoryStore()) =>
  Layer.unwrapEffect(
    Effect.map(Fixtures, (fx) => Reader.layer({ roots: [fx.dir], memory, http: { timeoutMs: 2000 } }))
  ).pipe(Layer.provideMerge(FixturesLive))

/** ffmpeg (or, with `pattern`, other) processes that are children of this process (read from /proc). */
export const childDecoders = (pattern: RegExp = /ffmpeg|ffprobe/): Array<number> => {
  const out: Array<number> = []
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      if (ppid === process.pid && pattern.test(comm)) out.push(Number(entry))
    } catch {
      // gone
    }
  }
  return out
}

/** Counts sign changes (zero crossings) of a signal: about 2 * frequency per second. */
export const zeroCrossings = (xs: Float32Array): number => {
  let n = 0
  for (let i = 1; i < xs.length; i++) if (xs[i - 1]! < 0 !== xs[i]! < 0) n++
  return n
}
