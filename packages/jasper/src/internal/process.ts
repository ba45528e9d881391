import { Effect, Stream } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

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

/** Cuts a stream of buffers into pieces of exactly `size` bytes (the last may be shorter). */
export const chunker = (size: number) => {
  let pending: Array<Buffer> = []
  let pendingBytes = 0
  return {
    push(chunk: Buffer): Array<Buffer> {
      const out: Array<Buffer> = []
      if (pendingBytes === 0) {
        // fast path: whole pieces straight out of the chunk
        while (chunk.length >= size) {
          out.push(Buffer.from(chunk.subarray(0, size)))
          chunk = chunk.subarray(size)
        }
        if (chunk.length > 0) {
          pending = [chunk]
          pendingBytes = chunk.length
        }
        return out
      }
      pending.push(chunk)
      pendingBytes += chunk.length
      while (pendingBytes >= size) {
        const piece = Buffer.allocUnsafe(size)
        let offset = 0
        while (offset < size) {
          const head = pending[0]!
          const n = Math.min(head.length, size - offset)
          head.copy(piece, offset, 0, n)
          offset += n
          if (n === head.length) pending.shift()
          else pending[0] = head.subarray(n)
        }
        pendingBytes -= size
        out.push(piece)
      }
      return out
    },
    rest(): Buffer | undefined {
      if (pendingBytes === 0) return undefined
      const b = Buffer.concat(pending, pendingBytes)
      pending = []
      pendingBytes = 0
      return b
    }
  }
}

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
      const stdout = running.child.stdout! as AsyncIterable<Buffer>
      // pieces are cut in plain async code; the Effect stream is pulled once per piece, not per pipe read
      async function* pieces() {
        for await (const chunk of stdout) yield* cut.push(chunk)
      }
      const body = Stream.fromAsyncIterable(pieces(), (cause) => cause).pipe(Stream.orDie)
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
