import { Effect, Stream } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Readable } from "node:stream"

const onPath = (name: string): string | undefined => {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue
    const candidate = path.join(dir, name)
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      if (fs.statSync(candidate).isFile()) return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

let ffmpegCache: Promise<string> | undefined
let ffprobeCache: Promise<string> | undefined

/** ffmpeg: `JASPER_FFMPEG`, then `ffmpeg` on PATH, then @ffmpeg-installer/ffmpeg's binary. */
export const ffmpeg: Effect.Effect<string, Error> = Effect.tryPromise({
  try: () =>
    (ffmpegCache ??= (async () => {
      const found = process.env.JASPER_FFMPEG || onPath("ffmpeg")
      if (found) return found
      const mod: any = await import("@ffmpeg-installer/ffmpeg")
      return (mod.default ?? mod).path as string
    })()),
  catch: (cause) => new Error(`ffmpeg not found (set JASPER_FFMPEG or put ffmpeg on PATH): ${String(cause)}`)
})

/** ffprobe: `JASPER_FFPROBE`, then `ffprobe` on PATH, then @ffprobe-installer/ffprobe's binary. */
export const ffprobe: Effect.Effect<string, Error> = Effect.tryPromise({
  try: () =>
    (ffprobeCache ??= (async () => {
      const found = process.env.JASPER_FFPROBE || onPath("ffprobe")
      if (found) return found
      const mod: any = await import("@ffprobe-installer/ffprobe")
      return (mod.default ?? mod).path as string
    })()),
  catch: (cause) => new Error(`ffprobe not found (set JASPER_FFPROBE or put ffprobe on PATH): ${String(cause)}`)
})

export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stderr: string
}

const STDERR_TAIL = 16 * 1024

interface Running {
  readonly child: ChildProcess
  readonly exit: Promise<Exit>
}

const start = (command: string, args: ReadonlyArray<string>, keepStderr: number): Running => {
  const child = spawn(command, args as Array<string>, { stdio: ["ignore", "pipe", "pipe"] })
  let stderr = ""
  child.stderr!.setEncoding("utf8")
  child.stderr!.on("data", (d: string) => {
    stderr += d
    if (stderr.length > keepStderr * 2) stderr = stderr.slice(-keepStderr)
  })
  const exit = new Promise<Exit>((resolve) => {
    child.once("error", (e) => resolve({ code: -1, signal: null, stderr: `${stderr}\n${e.message}` }))
    child.once("close", (code, signal) => resolve({ code, signal, stderr: stderr.slice(-keepStderr) }))
  })
  return { child, exit }
}

const kill = (running: Running) =>
  Effect.promise(async () => {
    const { child } = running
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    await running.exit
  })

/** A started process killed (and reaped) when the scope closes. */
const acquire = (command: string, args: ReadonlyArray<string>, keepStderr = STDERR_TAIL) =>
  Effect.acquireRelease(
    Effect.sync(() => start(command, args, keepStderr)),
    kill
  )

/**
 * Runs a process and collects its output. Interrupting the effect kills the process.
 */
export const run = (
  command: string,
  args: ReadonlyArray<string>,
  keepStderr = STDERR_TAIL
): Effect.Effect<Exit & { readonly stdout: Buffer }> =>
  Effect.scoped(
    Effect.flatMap(acquire(command, args, keepStderr), (running) =>
      Effect.promise(async () => {
        const chunks: Array<Buffer> = []
        running.child.stdout!.on("data", (c: Buffer) => chunks.push(c))
        const exit = await running.exit
        return { ...exit, stdout: Buffer.concat(chunks) }
      })
    )
  )

/**
 * Cuts a stream of buffers into pieces of exactly `size` bytes (the last may be
 * shorter). Each byte is copied once, as it arrives, into the piece being filled.
 */
export const chunker = (size: number) => {
  let current: Buffer | undefined
  let offset = 0
  return {
    push(chunk: Buffer): Array<Buffer> {
      const out: Array<Buffer> = []
      let at = 0
      while (at < chunk.length) {
        if (current === undefined) {
          current = Buffer.allocUnsafe(size)
          offset = 0
        }
        const n = Math.min(chunk.length - at, size - offset)
        chunk.copy(current, offset, at, at + n)
        offset += n
        at += n
        if (offset === size) {
          out.push(current)
          current = undefined
        }
      }
      return out
    },
    rest(): Buffer | undefined {
      const b = current?.subarray(0, offset)
      current = undefined
      return b && b.length > 0 ? b : undefined
    }
  }
}

/**
 * The pieces of a readable as an async iterable with back-pressure at piece
 * granularity: the pipe is read at full speed (flowing mode) while fewer than
 * `maxQueued` pieces wait, and paused (so the writer blocks) once they do. The
 * Effect stream above is pulled once per piece, not once per 64 KiB pipe read.
 */
const pieces = (readable: Readable, cut: ReturnType<typeof chunker>, maxQueued = 2): AsyncIterable<Buffer> => ({
  [Symbol.asyncIterator]() {
    const queue: Array<Buffer> = []
    let ended = false
    let failure: { error: unknown } | undefined
    let wake: (() => void) | undefined
    const notify = () => {
      const w = wake
      wake = undefined
      w?.()
    }
    readable.on("data", (chunk: Buffer) => {
      for (const piece of cut.push(chunk)) queue.push(piece)
      if (queue.length >= maxQueued) readable.pause()
      notify()
    })
    readable.once("end", () => {
      ended = true
      notify()
    })
    readable.once("error", (error) => {
      failure = { error }
      notify()
    })
    return {
      async next(): Promise<IteratorResult<Buffer>> {
        for (;;) {
          if (queue.length > 0) {
            const value = queue.shift()!
            if (queue.length < maxQueued && readable.isPaused()) readable.resume()
            return { value, done: false }
          }
          if (failure) throw failure.error
          if (ended) return { value: undefined, done: true }
          await new Promise<void>((resolve) => (wake = resolve))
        }
      },
      async return(): Promise<IteratorResult<Buffer>> {
        readable.destroy()
        return { value: undefined, done: true }
      }
    }
  }
})

/**
 * Streams a process's stdout in pieces of `pieceBytes` with back-pressure (the pipe
 * is only read as fast as the stream is pulled). A non-zero exit fails the stream
 * with `onFailure(exit)`; `partial` decides what to do with a short last piece.
 * Interrupting or ending the stream early kills the process.
 */
export const stream = <E>(options: {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly pieceBytes: number
  readonly onFailure: (exit: Exit) => E
  /** Keep a short last piece (audio) or drop it (video frames). */
  readonly keepPartial: boolean
  /** Called with each process when it starts (tests use it to watch the pid). */
  readonly onStart?: (pid: number | undefined) => void
}): Stream.Stream<Buffer, E> =>
  Stream.unwrapScoped(
    Effect.map(acquire(options.command, options.args), (running) => {
      options.onStart?.(running.child.pid)
      const cut = chunker(options.pieceBytes)
      const body = Stream.fromAsyncIterable(pieces(running.child.stdout!, cut), (cause) => cause).pipe(Stream.orDie)
      const tail = Stream.fromEffect(Effect.promise(() => running.exit)).pipe(
        Stream.flatMap((exit) => {
          if (exit.code !== 0) return Stream.fail(options.onFailure(exit))
          const rest = cut.rest()
          return rest && options.keepPartial ? Stream.make(rest) : Stream.empty
        })
      )
      return Stream.concat(body, tail)
    })
  )

/** The last meaningful lines of ffmpeg's stderr, for error messages. */
export const summarize = (stderr: string, lines = 3): string => {
  const kept = stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(
      (l) =>
        l.length > 0 &&
        !/^(Input|Output|Stream|Duration|Metadata|encoder|major_brand|minor_version|compatible_brands|handler_name|frame=|Press)/.test(
          l
        )
    )
  return kept.slice(-lines).join(" | ") || "no diagnostics"
}
