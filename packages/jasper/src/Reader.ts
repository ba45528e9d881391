/**
 * Readers: one interface over the bytes behind a URI, chosen by scheme. `file:`
 * (confined to configured root folders), `http:`/`https:` (timeout, size limit,
 * status checked) and `memory:` come built in; a user's layer can add schemes.
 * Reading is an Effect `Stream` with back-pressure; the sha256 is computed while
 * reading.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Schema, Stream } from "effect"
import type { Scope } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { StorageError } from "@org/storage"
import { decodeOptions } from "./internal/options.js"
import { type JasperConfigError, ReadError } from "./JasperError.js"

/**
 * What decoders and the catalog accept: a URI (`file:///...`, `https://...`,
 * `memory://key`), a local path (read through the `file` scheme, so still confined
 * to the roots), or an asset (anything with a `uri` and an `id`).
 *
 * @since 0.1.0
 * @category models
 */
export type Source = string | { readonly uri: string; readonly id?: string }

/**
 * One URI scheme's reader. `stream` yields the bytes; `localPath`, when present,
 * gives a file on disk that decoders may open directly (no copy).
 *
 * @since 0.1.0
 * @category models
 */
/**
 * The file scheme's check of a bare absolute path, without the URI round trip (a
 * reader's `filePath` of a plain path runs it before every decode).
 */
const BARE_PATH: unique symbol = Symbol.for("@org/jasper/Reader/barePath")

type BarePath = (lexical: string, uriOf: () => string) => string | ReadError

export interface Scheme {
  /** The schemes served, without the colon: `["http", "https"]`. */
  readonly schemes: ReadonlyArray<string>
  readonly stream: (url: URL, uri: string) => Stream.Stream<Uint8Array, ReadError>
  readonly localPath?: (url: URL, uri: string) => Effect.Effect<string, ReadError>
}

/**
 * Bytes read whole, with their hash.
 *
 * @since 0.1.0
 * @category models
 */
export interface Read {
  readonly uri: string
  readonly bytes: Uint8Array
  readonly sha256: string
  readonly byteSize: number
}

/**
 * A local file for a URI (the file itself for `file:`, a temporary copy removed
 * when the scope closes otherwise), with the hash of its bytes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Local {
  readonly uri: string
  readonly path: string
  readonly sha256: string
  readonly byteSize: number
  readonly temporary: boolean
}

/**
 * The shape of the `Reader` service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly schemes: ReadonlyArray<string>
  /** The bytes behind a source, pulled with back-pressure. */
  readonly stream: (source: Source) => Stream.Stream<Uint8Array, ReadError>
  /** Reads a source whole (refused over `maxBytes`, default 256 MiB) and hashes it. */
  readonly read: (source: Source, options?: { readonly maxBytes?: number }) => Effect.Effect<Read, ReadError>
  /** Hashes a source while streaming it, without keeping it. */
  readonly hash: (source: Source) => Effect.Effect<{ readonly sha256: string; readonly byteSize: number }, ReadError>
  /** A local file for a source, hashed while read (copied to a temporary file unless the scheme has files). */
  readonly localize: (source: Source) => Effect.Effect<Local, ReadError, Scope.Scope>
  /** The file behind a source when its scheme has files (`file:`), `undefined` otherwise. */
  readonly filePath: (source: Source) => Effect.Effect<string | undefined, ReadError>
  /** A local path for a source without hashing (a temporary copy only where the scheme has no files). */
  readonly localPath: (source: Source) => Effect.Effect<string, ReadError, Scope.Scope>
  /** The same reader with one more scheme (replacing one of the same name). */
  readonly withScheme: (scheme: Scheme) => Service
}

/**
 * The reader service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Reader extends Context.Tag("@org/jasper/Reader")<Reader, Service>() {}

const HAS_SCHEME = /^[a-zA-Z][a-zA-Z0-9+.-]+:/

/**
 * The URI of a source: URIs pass through, paths become `file:` URIs.
 *
 * @since 0.1.0
 * @category helpers
 */
export const uriOf = (source: Source): string => {
  const s = typeof source === "string" ? source : source.uri
  return HAS_SCHEME.test(s) ? s : pathToFileURL(path.resolve(s)).href
}

/**
 * The asset id of a source, when it is an asset.
 *
 * @since 0.1.0
 * @category helpers
 */
export const assetIdOf = (source: Source): string | undefined => (typeof source === "string" ? undefined : source.id)

const ioError = (uri: string, cause: unknown): ReadError => {
  const code = (cause as { code?: string } | undefined)?.code
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new ReadError({ uri, reason: "not-found", message: `${uri}: no such file`, cause })
  }
  if (cause instanceof ReadError) return cause
  return new ReadError({
    uri,
    reason: "io",
    message: `${uri}: ${StorageError.messageOf(cause)}`,
    cause
  })
}

// ---------------------------------------------------------------------------
// file

/**
 * Options of the `file` scheme: the root folders reads are confined to.
 *
 * @since 0.1.0
 * @category models
 */
export interface FileOptions {
  readonly roots: ReadonlyArray<string>
  /** Read buffer size in bytes (default 1 MiB). */
  readonly chunkBytes?: number
}

const inside = (root: string, p: string) => {
  const rel = path.relative(root, p)
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel))
}

/**
 * The `file:` scheme confined to `roots`: a path outside every root (after `..`
 * and symbolic links are resolved) is refused with `reason: "outside-root"`.
 *
 * @since 0.1.0
 * @category schemes
 */
export const file = (options: FileOptions): Scheme => {
  const roots = options.roots.map((r) => path.resolve(r))
  const realRoots = roots.map((r) => {
    try {
      return fs.realpathSync(r)
    } catch {
      return r
    }
  })
  const chunk = options.chunkBytes ?? 1 << 20
  /**
   * The real path of a file URI under the roots, or the error. Plain code in one
   * `Effect.suspend`: it runs before every decode, and a chain of effects here cost
   * more than the two metadata syscalls (done synchronously: microseconds, no thread pool).
   */
  const resolvePath = (url: URL, uri: string): string | ReadError => {
    if (url.host !== "" && url.host !== "localhost") {
      return new ReadError({ uri, reason: "invalid-uri", message: `${uri}: file URIs on other hosts are not read` })
    }
    let lexical: string
    try {
      lexical = path.resolve(fileURLToPath(url))
    } catch (cause) {
      return new ReadError({ uri, reason: "invalid-uri", message: `${uri}: not a file path`, cause })
    }
    return resolveLexical(lexical, () => uri)
  }
  /** The checks on an absolute path; `uriOf` names it in errors (made only for an error). */
  const resolveLexical = (lexical: string, uriOf: () => string): string | ReadError => {
    // built only when refused: an error captures a stack trace, which costs more than the checks
    const refused = () => {
      const uri = uriOf()
      return new ReadError({
        uri,
        reason: "outside-root",
        message: `${uri}: path ${lexical} is outside the reader's roots (${roots.join(", ") || "none configured"})`
      })
    }
    if (!roots.some((r) => inside(r, lexical))) return refused()
    let real: string
    let stat: fs.Stats
    try {
      real = fs.realpathSync.native(lexical)
      if (!realRoots.some((r) => inside(r, real)) && !roots.some((r) => inside(r, real))) return refused()
      stat = fs.statSync(real)
    } catch (cause) {
      return ioError(uriOf(), cause)
    }
    if (!stat.isFile()) {
      const uri = uriOf()
      return new ReadError({ uri, reason: "not-found", message: `${uri}: not a regular file` })
    }
    return real
  }
  const resolve = (url: URL, uri: string): Effect.Effect<string, ReadError> =>
    Effect.suspend(() => {
      const r = resolvePath(url, uri)
      return typeof r === "string" ? Effect.succeed(r) : Effect.fail(r)
    })
  const scheme: Scheme & { readonly [BARE_PATH]: BarePath } = {
    schemes: ["file"],
    localPath: resolve,
    [BARE_PATH]: resolveLexical,
    stream: (url, uri) =>
      Stream.unwrap(
        Effect.map(resolve(url, uri), (p) =>
          Stream.fromAsyncIterable(fs.createReadStream(p, { highWaterMark: chunk }), (cause) => ioError(uri, cause))
        )
      ) as Stream.Stream<Uint8Array, ReadError>
  }
  return scheme
}

// ---------------------------------------------------------------------------
// http

/**
 * Options of the `http`/`https` scheme.
 *
 * @since 0.1.0
 * @category models
 */
export interface HttpOptions {
  /** Socket idle timeout in milliseconds, before headers and between body chunks (default 30 s). */
  readonly timeoutMs?: number
  /** The largest body accepted, in bytes (default 4 GiB). */
  readonly maxBytes?: number
  /** Redirects followed (default 5). */
  readonly maxRedirects?: number
  readonly headers?: Readonly<Record<string, string>>
}

class TimedOut extends Error {}

type Response = http.IncomingMessage & { readonly timedOut: () => boolean }

const get = (
  url: URL,
  uri: string,
  options: HttpOptions,
  redirects: number
): Effect.Effect<Response, ReadError, Scope.Scope> =>
  Effect.flatMap(
    Effect.acquireRelease(
      Effect.async<Response, ReadError>((resume) => {
        const timeoutMs = options.timeoutMs ?? 30_000
        let timedOut = false
        const req = (url.protocol === "https:" ? https : http).get(url, { headers: { ...options.headers } }, (res) =>
          resume(Effect.succeed(Object.assign(res, { timedOut: () => timedOut })))
        )
        req.setTimeout(timeoutMs, () => {
          timedOut = true
          req.destroy(new TimedOut(`no data for ${timeoutMs} ms`))
        })
        req.on("error", (cause) =>
          resume(
            Effect.fail(
              cause instanceof TimedOut
                ? new ReadError({ uri, reason: "timeout", message: `${uri}: ${cause.message}`, cause })
                : ioError(uri, cause)
            )
          )
        )
        return Effect.sync(() => req.destroy())
      }),
      (res) => Effect.sync(() => res.destroy())
    ),
    (res) => {
      const status = res.statusCode ?? 0
      const location = res.headers.location
      if (status >= 300 && status < 400 && location) {
        res.resume()
        if (redirects >= (options.maxRedirects ?? 5)) {
          return Effect.fail(
            new ReadError({ uri, reason: "http-status", status, message: `${uri}: too many redirects` })
          )
        }
        return get(new URL(location, url), uri, options, redirects + 1)
      }
      if (status < 200 || status >= 300) {
        res.resume()
        return Effect.fail(
          new ReadError({ uri, reason: "http-status", status, message: `${uri}: http status ${status}` })
        )
      }
      const length = Number(res.headers["content-length"])
      const max = options.maxBytes ?? 4 * 1024 ** 3
      if (Number.isFinite(length) && length > max) {
        return Effect.fail(
          new ReadError({ uri, reason: "too-large", message: `${uri}: ${length} bytes is over the limit of ${max}` })
        )
      }
      return Effect.succeed(res)
    }
  )

/**
 * The `http:` and `https:` schemes: non-2xx statuses, silent servers and bodies
 * over `maxBytes` fail with a `ReadError` naming the URI.
 *
 * @since 0.1.0
 * @category schemes
 */
export const httpScheme = (options: HttpOptions = {}): Scheme => ({
  schemes: ["http", "https"],
  stream: (url, uri) =>
    Stream.unwrapScoped(
      Effect.map(get(url, uri, options, 0), (res) => {
        const max = options.maxBytes ?? 4 * 1024 ** 3
        let seen = 0
        return Stream.fromAsyncIterable(res as AsyncIterable<Buffer>, (cause) =>
          cause instanceof TimedOut || res.timedOut()
            ? new ReadError({ uri, reason: "timeout", message: `${uri}: the server stopped sending`, cause })
            : ioError(uri, cause)
        ).pipe(
          Stream.mapEffect((chunk) => {
            seen += chunk.byteLength
            return seen > max
              ? Effect.fail(
                  new ReadError({ uri, reason: "too-large", message: `${uri}: body is over the limit of ${max} bytes` })
                )
              : Effect.succeed(chunk as Uint8Array)
          })
        )
      })
    )
})

// ---------------------------------------------------------------------------
// memory

/**
 * Bytes kept in memory under keys, read as `memory://<key>`.
 *
 * @since 0.1.0
 * @category models
 */
export class MemoryStore {
  readonly entries = new Map<string, Uint8Array>()
  /** Stores bytes under `key` and returns their URI. */
  put(key: string, bytes: Uint8Array | string): string {
    this.entries.set(key, typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes)
    return `memory://${key}`
  }
}

/**
 * The `memory:` scheme over a {@link MemoryStore}, streamed in chunks of
 * `chunkBytes` (default 64 KiB).
 *
 * @since 0.1.0
 * @category schemes
 */
export const memory = (store: MemoryStore, chunkBytes = 64 * 1024): Scheme => ({
  schemes: ["memory"],
  stream: (_url, uri) =>
    Stream.suspend(() => {
      const key = uri.slice("memory://".length)
      const bytes = store.entries.get(key)
      if (bytes === undefined) {
        return Stream.fail(new ReadError({ uri, reason: "not-found", message: `${uri}: no such memory entry` }))
      }
      const chunks: Array<Uint8Array> = []
      for (let i = 0; i < bytes.byteLength; i += chunkBytes) chunks.push(bytes.subarray(i, i + chunkBytes))
      return Stream.fromIterable(chunks)
    })
})

// ---------------------------------------------------------------------------
// service

/**
 * Options of {@link make}: where temporary copies go (default the OS temp folder).
 *
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions {
  readonly tempDir?: string
}

/**
 * Builds a reader over the given schemes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (schemes: ReadonlyArray<Scheme>, options: MakeOptions = {}): Service => {
  const table = new Map<string, Scheme>()
  for (const s of schemes) for (const name of s.schemes) table.set(name.toLowerCase(), s)
  const tempDir = options.tempDir ?? os.tmpdir()

  const resolve = (source: Source): Effect.Effect<{ url: URL; uri: string; scheme: Scheme }, ReadError> =>
    Effect.suspend(() => {
      const uri = uriOf(source)
      let url: URL
      try {
        url = new URL(uri)
      } catch (cause) {
        return Effect.fail(new ReadError({ uri, reason: "invalid-uri", message: `${uri}: not a valid URI`, cause }))
      }
      const name = url.protocol.replace(/:$/, "").toLowerCase()
      const scheme = table.get(name)
      if (!scheme) {
        return Effect.fail(
          new ReadError({
            uri,
            reason: "unsupported-scheme",
            message: `${uri}: no reader for scheme "${name}" (have: ${[...table.keys()].join(", ")})`
          })
        )
      }
      return Effect.succeed({ url, uri, scheme })
    })

  const stream = (source: Source): Stream.Stream<Uint8Array, ReadError> =>
    Stream.unwrap(Effect.map(resolve(source), ({ scheme, uri, url }) => scheme.stream(url, uri)))

  const hashOf = (s: Stream.Stream<Uint8Array, ReadError>, each?: (chunk: Uint8Array) => Promise<void> | void) =>
    Effect.suspend(() => {
      const h = crypto.createHash("sha256")
      let byteSize = 0
      return Stream.runForEach(s, (chunk) => {
        h.update(chunk)
        byteSize += chunk.byteLength
        const r = each?.(chunk)
        return r ? Effect.promise(() => r) : Effect.void
      }).pipe(Effect.map(() => ({ sha256: h.digest("hex"), byteSize })))
    })

  const read: Service["read"] = (source, options) =>
    Effect.gen(function* () {
      const uri = uriOf(source)
      const max = options?.maxBytes ?? 256 * 1024 * 1024
      const chunks: Array<Uint8Array> = []
      let total = 0
      const { sha256, byteSize } = yield* hashOf(
        stream(source).pipe(
          Stream.mapEffect((c) => {
            total += c.byteLength
            return total > max
              ? Effect.fail(
                  new ReadError({ uri, reason: "too-large", message: `${uri}: over the limit of ${max} bytes` })
                )
              : Effect.succeed(c)
          })
        ),
        (c) => void chunks.push(c)
      )
      return { uri, bytes: Buffer.concat(chunks), sha256, byteSize }
    })

  const spool = (uri: string, s: Stream.Stream<Uint8Array, ReadError>) =>
    Effect.gen(function* () {
      const target = yield* Effect.acquireRelease(
        Effect.sync(() => path.join(tempDir, `jasper-${crypto.randomUUID()}`)),
        (p) => Effect.promise(() => fs.promises.rm(p, { force: true }))
      )
      const handle = yield* Effect.acquireRelease(
        Effect.tryPromise({ try: () => fs.promises.open(target, "w"), catch: (cause) => ioError(uri, cause) }),
        (fh) => Effect.promise(() => fh.close().catch(() => undefined))
      )
      const hashed = yield* hashOf(s, async (chunk) => {
        await handle.write(chunk)
      }).pipe(Effect.catchAllDefect((cause) => Effect.fail(ioError(uri, cause))))
      return { path: target, ...hashed }
    })

  const service: Service = {
    schemes: [...table.keys()],
    stream,
    read,
    hash: (source) => hashOf(stream(source)),
    localize: (source) =>
      Effect.flatMap(
        resolve(source),
        ({ scheme, uri, url }): Effect.Effect<Local, ReadError, Scope.Scope> =>
          scheme.localPath
            ? Effect.flatMap(scheme.localPath(url, uri), (p) =>
                Effect.map(hashOf(scheme.stream(url, uri)), (h) => ({ uri, path: p, temporary: false, ...h }))
              )
            : Effect.map(spool(uri, scheme.stream(url, uri)), (l) => ({ uri, temporary: true, ...l }))
      ),
    filePath: (source) =>
      Effect.suspend(() => {
        // a plain path to a file scheme that checks paths itself: no URI made unless for an error
        const s = typeof source === "string" ? source : source.uri
        const bare = (table.get("file") as { [BARE_PATH]?: BarePath } | undefined)?.[BARE_PATH]
        if (bare && !HAS_SCHEME.test(s)) {
          const r = bare(path.resolve(s), () => uriOf(source))
          return typeof r === "string" ? Effect.succeed(r) : Effect.fail(r)
        }
        return Effect.flatMap(resolve(source), ({ scheme, uri, url }) =>
          scheme.localPath ? scheme.localPath(url, uri) : Effect.succeed(undefined)
        )
      }),
    localPath: (source) =>
      Effect.flatMap(resolve(source), ({ scheme, uri, url }) =>
        scheme.localPath ? scheme.localPath(url, uri) : Effect.map(spool(uri, scheme.stream(url, uri)), (l) => l.path)
      ),
    withScheme: (scheme) => make([...table.values(), scheme], options)
  }
  return service
}

/**
 * Options of {@link layer}: which built-in schemes to serve and extra ones.
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends MakeOptions {
  /** Root folders of the `file` scheme; without it, no `file` scheme. */
  readonly roots?: ReadonlyArray<string>
  /** Options of `http`/`https`; `false` turns them off (default on). */
  readonly http?: HttpOptions | false
  /** A store for the `memory` scheme (default: a fresh empty store). */
  readonly memory?: MemoryStore
  /** More schemes (served after, and over, the built-in ones). */
  readonly schemes?: ReadonlyArray<Scheme>
}

const HttpOptionsSchema = Schema.Struct({
  timeoutMs: Schema.optional(Schema.Number.pipe(Schema.positive())),
  maxBytes: Schema.optional(Schema.Number.pipe(Schema.nonNegative())),
  maxRedirects: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  headers: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
})

const LayerOptionsSchema = Schema.Struct({
  tempDir: Schema.optional(Schema.NonEmptyString),
  roots: Schema.optional(Schema.Array(Schema.NonEmptyString)),
  http: Schema.optional(Schema.Union(HttpOptionsSchema, Schema.Literal(false))),
  memory: Schema.optional(Schema.instanceOf(MemoryStore)),
  schemes: Schema.optional(
    Schema.Array(
      Schema.declare(
        (u): u is Scheme =>
          typeof u === "object" && u !== null && Array.isArray((u as Scheme).schemes) && "stream" in u,
        { description: "a Reader.Scheme" }
      )
    )
  )
})

/**
 * A layer with the built-in schemes configured by `options`. The options are
 * decoded first: an unknown or bad one fails the layer with a `JasperConfigError`
 * naming it.
 *
 * @example
 * ```ts
 * const Readers = Reader.layer({ roots: ["/media"], http: { timeoutMs: 10_000, maxBytes: 2 ** 30 } })
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: LayerOptions = {}): Layer.Layer<Reader, JasperConfigError> =>
  Layer.effect(
    Reader,
    Effect.map(decodeOptions("Reader", LayerOptionsSchema, options), () =>
      make(
        [
          ...(options.roots ? [file({ roots: options.roots })] : []),
          ...(options.http === false ? [] : [httpScheme(options.http ?? {})]),
          memory(options.memory ?? new MemoryStore()),
          ...(options.schemes ?? [])
        ],
        options
      )
    )
  )

/**
 * Adds a scheme to the `Reader` below it: `Reader.withScheme(s3).pipe(Layer.provide(Reader.layer(...)))`.
 *
 * @since 0.1.0
 * @category layers
 */
export const withScheme = (scheme: Scheme): Layer.Layer<Reader, never, Reader> =>
  Layer.effect(
    Reader,
    Effect.map(Reader, (r) => r.withScheme(scheme))
  )
