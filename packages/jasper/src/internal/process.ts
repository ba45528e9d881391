import { Effect, Stream } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import type { Readable } from "node:stream"

const onPath = (name: string, PATH = process.env.PATH): string | undefined => {
  for (const dir of (PATH ?? "").split(path.delimiter)) {
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

/**
 * One ffmpeg/ffprobe pair, chosen once per process:
 * 1. `JASPER_FFMPEG` / `JASPER_FFPROBE` when set (one of them alone takes its partner
 *    from the same folder when there is one there, else from the rules below);
 * 2. else `ffmpeg` and `ffprobe` both on `PATH` (a system build, e.g. Debian's);
 * 3. else the bundled fallbacks (@ffmpeg-installer/ffmpeg, @ffprobe-installer/ffprobe).
 * An `ffmpeg` on PATH without an `ffprobe` beside it is not mixed with a bundled
 * ffprobe: the bundled pair is used and the diagnostics say why.
 */
export interface Binary {
  readonly path: string
  /** Where it was found: the environment variable, `PATH`, or the bundled npm package. */
  readonly source: "env" | "path" | "bundled"
}

export interface Pair {
  readonly ffmpeg: Binary
  readonly ffprobe: Binary
  readonly notes: ReadonlyArray<string>
}

const bundled = async (name: "ffmpeg" | "ffprobe"): Promise<string> => {
  const mod: any =
    name === "ffmpeg" ? await import("@ffmpeg-installer/ffmpeg") : await import("@ffprobe-installer/ffprobe")
  return (mod.default ?? mod).path as string
}

const besides = (file: string, name: string): string | undefined => {
  const candidate = path.join(path.dirname(file), name)
  try {
    fs.accessSync(candidate, fs.constants.X_OK)
    return candidate
  } catch {
    return undefined
  }
}

/** Chooses the pair from an environment (exported for tests). */
export const choosePair = async (env: Record<string, string | undefined> = process.env): Promise<Pair> => {
  const notes: Array<string> = []
  const envMpeg = env.JASPER_FFMPEG || undefined
  const envProbe = env.JASPER_FFPROBE || undefined
  const sysMpeg = onPath("ffmpeg", env.PATH)
  const sysProbe = onPath("ffprobe", env.PATH)
  const fallback = async (name: "ffmpeg" | "ffprobe"): Promise<Binary> => {
    const sys = name === "ffmpeg" ? sysMpeg : sysProbe
    if (sysMpeg && sysProbe) return { path: sys!, source: "path" }
    return { path: await bundled(name), source: "bundled" }
  }
  if (envMpeg || envProbe) {
    const ffmpeg: Binary = envMpeg
      ? { path: envMpeg, source: "env" }
      : besides(envProbe!, "ffmpeg")
        ? { path: besides(envProbe!, "ffmpeg")!, source: "env" }
        : await fallback("ffmpeg")
    const ffprobe: Binary = envProbe
      ? { path: envProbe, source: "env" }
      : besides(envMpeg!, "ffprobe")
        ? { path: besides(envMpeg!, "ffprobe")!, source: "env" }
        : await fallback("ffprobe")
    if (!envMpeg || !envProbe) notes.push(`only ${envMpeg ? "JASPER_FFMPEG" : "JASPER_FFPROBE"} is set`)
    return { ffmpeg, ffprobe, notes }
  }
  if (sysMpeg && sysProbe)
    return { ffmpeg: { path: sysMpeg, source: "path" }, ffprobe: { path: sysProbe, source: "path" }, notes }
  if (sysMpeg || sysProbe) {
    notes.push(
      `${sysMpeg ? "ffmpeg" : "ffprobe"} is on PATH without ${sysMpeg ? "ffprobe" : "ffmpeg"}: using the bundled pair instead of mixing builds`
    )
  }
  return {
    ffmpeg: { path: await bundled("ffmpeg"), source: "bundled" },
    ffprobe: { path: await bundled("ffprobe"), source: "bundled" },
    notes
  }
}

let pairCache: Promise<Pair> | undefined

/** The pair in use (chosen once per process). */
export const pair: Effect.Effect<Pair, Error> = Effect.tryPromise({
  try: () => (pairCache ??= choosePair()),
  catch: (cause) =>
    new Error(`ffmpeg/ffprobe not found (set JASPER_FFMPEG and JASPER_FFPROBE, or put both on PATH): ${String(cause)}`)
})

/** The ffmpeg of the chosen pair. */
export const ffmpeg: Effect.Effect<string, Error> = Effect.map(pair, (p) => p.ffmpeg.path)

/** The ffprobe of the chosen pair. */
export const ffprobe: Effect.Effect<string, Error> = Effect.map(pair, (p) => p.ffprobe.path)

const dropCache = new Map<string, Promise<boolean>>()

/**
 * Whether an ffmpeg's `noise` bitstream filter takes a `drop` expression (FFmpeg 5.0
 * and later), which sparse decoding uses to drop packets before the decoder.
 */
export const canDropPackets = (bin: string): Effect.Effect<boolean> =>
  Effect.promise(() => {
    let hit = dropCache.get(bin)
    if (!hit) {
      hit = new Promise<boolean>((resolve) => {
        const child = spawn(bin, ["-hide_banner", "-h", "bsf=noise"], { stdio: ["ignore", "pipe", "ignore"] })
        let out = ""
        child.stdout.setEncoding("utf8")
        child.stdout.on("data", (d: string) => (out += d))
        child.once("error", () => resolve(false))
        child.once("close", (code) => resolve(code === 0 && /^\s*-drop\b/m.test(out)))
      })
      dropCache.set(bin, hit)
    }
    return hit
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

/**
 * glibc malloc settings for every ffmpeg and ffprobe child: allocations up to 64 MiB
 * come from the heap and up to 256 MiB of freed heap is kept, instead of each frame
 * buffer (a decoder opened per concat entry, a buffer pool per filter) being mapped,
 * faulted in page by page and unmapped again. Measured on 1080p H.264 with Debian's
 * ffmpeg 5.1: every frame of 60 s to RGB 9.3 -> 6.6 s of CPU, a sparse concat list
 * 1.25 -> 1.02 s, for 4-10 MB more peak memory. Other C libraries ignore them; a value
 * already in the environment wins.
 */
const MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(64 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(256 * 1024 * 1024)
}

/** The environment of a child: this process's, with {@link MALLOC_ENV} where not set. */
export const childEnv = (env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv => ({ ...MALLOC_ENV, ...env })

const start = (
  command: string,
  args: ReadonlyArray<string>,
  keepStderr: number,
  stdin: "ignore" | "pipe" = "ignore",
  stdout: "pipe" | net.Socket = "pipe"
): Running => {
  const child = spawn(command, args as Array<string>, { stdio: [stdin, stdout, "pipe"], env: childEnv() })
  // the child holds its own copy of a socket given as its stdout: closing ours lets the reader see the end
  if (typeof stdout !== "string") stdout.destroy()
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
const acquire = (
  command: string,
  args: ReadonlyArray<string>,
  keepStderr = STDERR_TAIL,
  stdin: "ignore" | "pipe" = "ignore",
  stdout: "pipe" | net.Socket = "pipe"
) =>
  Effect.acquireRelease(
    Effect.sync(() => start(command, args, keepStderr, stdin, stdout)),
    kill
  )

/**
 * A process whose stdout is piped into the stdin of the process from `acquire` (both
 * killed when the scope closes). The feeder ending early because its reader exited
 * (a broken pipe) is not an error; its exit is returned for diagnostics.
 */
const feed = (target: Running, command: string, args: ReadonlyArray<string>) =>
  Effect.map(acquire(command, args), (feeder) => {
    const stdin = target.child.stdin!
    stdin.on("error", () => {
      // the reader exited first (it had all it needed): stop feeding
      feeder.child.stdout!.destroy()
    })
    feeder.child.stdout!.pipe(stdin)
    return feeder
  })

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
 * Cuts a byte stream into pieces of exactly `size` bytes (the last may be shorter),
 * filled in place: `target()` is the unfilled rest of the piece being filled, where
 * the next bytes go (a socket reads straight into it, or a chunk is copied into it),
 * and `filled(n)` records `n` bytes written there and returns the piece once it is full.
 */
export const filler = (size: number) => {
  let current = Buffer.allocUnsafe(size)
  let offset = 0
  return {
    target: (): Buffer => current.subarray(offset),
    filled(n: number): Buffer | undefined {
      offset += n
      if (offset < size) return undefined
      const full = current
      current = Buffer.allocUnsafe(size)
      offset = 0
      return full
    },
    /** Copies a chunk in; the pieces it completed. */
    push(chunk: Buffer): Array<Buffer> {
      const out: Array<Buffer> = []
      for (let at = 0; at < chunk.length; ) {
        const n = chunk.copy(current, offset, at)
        at += n
        const piece = this.filled(n)
        if (piece) out.push(piece)
      }
      return out
    },
    rest(): Buffer | undefined {
      const b = offset > 0 ? current.subarray(0, offset) : undefined
      offset = 0
      return b
    }
  }
}

/**
 * The pieces of a process's stdout as an async iterable with back-pressure at piece
 * granularity: the output is read at full speed while fewer than `maxQueued` pieces
 * wait, and not read (so the writer blocks) once they do. The Effect stream above
 * is pulled once per piece, not once per read.
 */
const receiver = (size: number, maxQueued = 2) => {
  const cut = filler(size)
  const queue: Array<Buffer> = []
  let ended = false
  let failure: { error: unknown } | undefined
  let wake: (() => void) | undefined
  let readable: Readable | undefined
  /** Reading stopped by `onread` (a socket's own pause state does not show it). */
  let stopped = false
  const notify = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  const add = (piece: Buffer) => {
    queue.push(piece)
    notify()
  }
  return {
    cut,
    /**
     * For a socket connected with it: each read lands in the piece being filled (no
     * buffer allocated per read, no copy); returning false stops reading.
     */
    onread: {
      buffer: () => cut.target(),
      callback: (n: number): boolean => {
        const piece = cut.filled(n)
        if (piece) add(piece)
        stopped = queue.length >= maxQueued
        return !stopped
      }
    } satisfies net.OnReadOpts,
    /** Starts reading: a socket connected with `onread`, or any readable (its chunks are copied). */
    attach(from: Readable, inPlace: boolean) {
      readable = from
      if (!inPlace) {
        from.on("data", (chunk: Buffer) => {
          for (const piece of cut.push(chunk)) add(piece)
          if (queue.length >= maxQueued) from.pause()
        })
      }
      from.once("end", () => {
        ended = true
        notify()
      })
      from.once("error", (error) => {
        failure = { error }
        notify()
      })
      from.resume()
    },
    pieces: (): AsyncIterable<Buffer> => ({
      [Symbol.asyncIterator]: () => ({
        async next(): Promise<IteratorResult<Buffer>> {
          for (;;) {
            if (queue.length > 0) {
              const value = queue.shift()!
              if (queue.length < maxQueued && (stopped || readable?.isPaused())) {
                stopped = false
                readable?.resume()
              }
              return { value, done: false }
            }
            if (failure) throw failure.error
            if (ended) return { value: undefined, done: true }
            await new Promise<void>((resolve) => (wake = resolve))
          }
        },
        async return(): Promise<IteratorResult<Buffer>> {
          readable?.destroy()
          return { value: undefined, done: true }
        }
      })
    })
  }
}

/** A name for a one-shot local socket: abstract on Linux (no file), a file in the temporary folder elsewhere. */
const socketPath = () => {
  const name = `jasper-${process.pid}-${crypto.randomBytes(6).toString("hex")}`
  return process.platform === "linux" ? `\0${name}` : path.join(os.tmpdir(), `${name}.sock`)
}

/**
 * A connected pair of local stream sockets: `writer` to hand to a child as its stdout,
 * `reader` connected with `onread` so that what the child writes is read in place.
 * Undefined where local sockets are not available (Windows, or a failure): the caller
 * then reads an ordinary pipe.
 */
const socketPair = (onread: net.OnReadOpts): Promise<{ reader: net.Socket; writer: net.Socket } | undefined> =>
  process.platform === "win32"
    ? Promise.resolve(undefined)
    : new Promise((resolve) => {
        const where = socketPath()
        const server = net.createServer()
        let reader: net.Socket | undefined
        const done = (pair: { reader: net.Socket; writer: net.Socket } | undefined) => {
          server.close()
          if (!where.startsWith("\0")) fs.rm(where, { force: true }, () => {})
          if (!pair) reader?.destroy()
          resolve(pair)
        }
        server.once("error", () => done(undefined))
        server.once("connection", (writer) => done({ reader: reader!, writer }))
        server.listen(where, () => {
          reader = net.connect({ path: where, onread })
          reader.once("error", () => done(undefined))
        })
      })

/**
 * Streams a process's stdout in pieces of `pieceBytes` with back-pressure (the output
 * is only read as fast as the stream is pulled). A non-zero exit fails the stream
 * with `onFailure(exit)`; `partial` decides what to do with a short last piece.
 * Interrupting or ending the stream early kills the process.
 *
 * The child writes into a local socket that is read in place into the pieces (one
 * allocation per piece instead of one per 64 KiB read, and no copy), which for raw
 * video is most of the reading cost; an ordinary pipe where no socket can be made.
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
  /** A process whose stdout is the input (stdin) of this one. */
  readonly input?: { readonly command: string; readonly args: ReadonlyArray<string> }
  /** Text written to the process's stdin (then closed), instead of `input`. */
  readonly stdinText?: string
}): Stream.Stream<Buffer, E> =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const piped = options.input !== undefined || options.stdinText !== undefined
      const received = receiver(options.pieceBytes, options.pieceBytes >= 1 << 20 ? 1 : 2)
      const pair = yield* Effect.acquireRelease(
        Effect.promise(() => socketPair(received.onread)),
        (pair) => Effect.sync(() => pair?.reader.destroy())
      )
      const running = yield* acquire(
        options.command,
        options.args,
        STDERR_TAIL,
        piped ? "pipe" : "ignore",
        pair?.writer ?? "pipe"
      )
      const feeder = options.input ? yield* feed(running, options.input.command, options.input.args) : undefined
      if (options.stdinText !== undefined) {
        const stdin = running.child.stdin!
        // the process exiting before it read everything is reported by its exit, not here
        stdin.on("error", () => {})
        stdin.end(options.stdinText)
      }
      options.onStart?.(running.child.pid)
      received.attach(pair?.reader ?? running.child.stdout!, pair !== undefined)
      const body = Stream.fromAsyncIterable(received.pieces(), (cause) => cause).pipe(Stream.orDie)
      const tail = Stream.fromEffect(Effect.promise(() => running.exit)).pipe(
        Stream.flatMap((exit) => {
          if (exit.code === 0) {
            const rest = received.cut.rest()
            return rest && options.keepPartial ? Stream.make(rest) : Stream.empty
          }
          if (!feeder) return Stream.fail(options.onFailure(exit))
          // the feeder's complaint comes first: it is usually why the reader failed
          return Stream.fromEffect(
            Effect.promise(() => feeder.exit).pipe(
              Effect.flatMap((fed) =>
                Effect.fail(
                  options.onFailure(
                    fed.code === 0 || fed.stderr.trim() === ""
                      ? exit
                      : { ...exit, stderr: `${fed.stderr}\n${exit.stderr}` }
                  )
                )
              )
            )
          )
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
