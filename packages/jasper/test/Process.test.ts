import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import * as Process from "../src/internal/process.js"

/** A node child writing `total` bytes (byte i is `i % 251`) in writes of uneven sizes. */
const writer = (total: number) => ({
  command: process.execPath,
  args: [
    "-e",
    `const total = ${total}; let at = 0; let size = 1;
     const next = () => {
       while (at < total) {
         size = (size * 7919 + 13) % 200003 + 1
         const n = Math.min(size, total - at)
         const b = Buffer.alloc(n)
         for (let i = 0; i < n; i++) b[i] = (at + i) % 251
         at += n
         if (!process.stdout.write(b)) return process.stdout.once("drain", next)
       }
     }
     next()`
  ]
})

const expected = (from: number, length: number) => Buffer.from(Array.from({ length }, (_, i) => (from + i) % 251))

describe("Process.stream", () => {
  it.live("children get glibc malloc thresholds raised, unless the environment sets them", () =>
    Effect.gen(function* () {
      const read = Stream.runCollect(
        Process.stream({
          command: process.execPath,
          args: [
            "-e",
            "process.stdout.write(`${process.env.MALLOC_MMAP_THRESHOLD_},${process.env.MALLOC_TRIM_THRESHOLD_}`)"
          ],
          pieceBytes: 1 << 16,
          keepPartial: true,
          onFailure: (exit) => new Error(exit.stderr)
        })
      )
      const text = Buffer.concat(Chunk.toArray(yield* read)).toString()
      expect(text).toBe(`${64 * 1024 * 1024},${256 * 1024 * 1024}`)
      expect(Process.childEnv({ MALLOC_MMAP_THRESHOLD_: "1" }).MALLOC_MMAP_THRESHOLD_).toBe("1")
    })
  )

  it("filler cuts copied chunks into exact pieces and keeps the rest", () => {
    const cut = Process.filler(5)
    expect(cut.push(Buffer.from([0, 1, 2]))).toEqual([])
    expect(cut.push(Buffer.from([3, 4, 5, 6, 7, 8, 9, 10, 11, 12])).map((b) => [...b])).toEqual([
      [0, 1, 2, 3, 4],
      [5, 6, 7, 8, 9]
    ])
    expect([...cut.rest()!]).toEqual([10, 11, 12])
    expect(cut.rest()).toBeUndefined()
  })

  it.live("gives every byte once, in pieces of exactly pieceBytes, with back-pressure, and the short rest", () =>
    Effect.gen(function* () {
      const total = 3_000_017
      const pieceBytes = 65_537
      const pieces = yield* Process.stream({
        ...writer(total),
        pieceBytes,
        keepPartial: true,
        onFailure: (exit) => new Error(exit.stderr)
      }).pipe(
        // a slow consumer: the writer has to wait
        Stream.tap(() => Effect.sleep("2 millis")),
        Stream.runCollect,
        Effect.map(Chunk.toArray)
      )
      const whole = Math.floor(total / pieceBytes)
      expect(pieces.length).toBe(whole + 1)
      pieces.slice(0, whole).forEach((p, i) => {
        expect(p.length).toBe(pieceBytes)
        expect(p.equals(expected(i * pieceBytes, pieceBytes))).toBe(true)
      })
      expect(pieces[whole]!.equals(expected(whole * pieceBytes, total - whole * pieceBytes))).toBe(true)
      // the pieces are distinct buffers (a consumer may keep them)
      expect(new Set(pieces.map((p) => p.buffer)).size).toBe(pieces.length)
    })
  )

  it.effect("drops a short rest when asked, and a failing exit fails the stream", () =>
    Effect.gen(function* () {
      const n = yield* Stream.runCount(
        Process.stream({ ...writer(1000), pieceBytes: 300, keepPartial: false, onFailure: () => "failed" })
      )
      expect(n).toBe(3)
      const failed = yield* Stream.runCollect(
        Process.stream({
          command: process.execPath,
          args: ["-e", "process.stdout.write('abc'); process.exit(3)"],
          pieceBytes: 2,
          keepPartial: false,
          onFailure: (exit) => `exit ${exit.code}`
        })
      ).pipe(Effect.flip)
      expect(failed).toBe("exit 3")
    })
  )

  it.effect("ending the stream early kills the process", () =>
    Effect.gen(function* () {
      let pid: number | undefined
      const first = yield* Stream.runCollect(
        Process.stream({
          command: process.execPath,
          args: ["-e", "const b = Buffer.alloc(1 << 20); const w = () => process.stdout.write(b, w); w()"],
          pieceBytes: 1 << 20,
          keepPartial: false,
          onStart: (p) => (pid = p),
          onFailure: () => "failed"
        }).pipe(Stream.take(2))
      )
      expect(Chunk.size(first)).toBe(2)
      expect(pid).toBeDefined()
      expect(() => process.kill(pid!, 0)).toThrow()
    })
  )
})
