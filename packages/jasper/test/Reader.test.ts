import { describe, expect, it, layer } from "@effect/vitest"
import { Context, Effect, Layer, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { JasperError, Reader } from "@org/jasper"

const sha = (b: Uint8Array) => crypto.createHash("sha256").update(b).digest("hex")

/** A real http server on 127.0.0.1 with a few routes; `never` accepts and never answers. */
const server = Effect.acquireRelease(
  Effect.async<{ url: string; hits: Map<string, number>; server: http.Server }>((resume) => {
    const hits = new Map<string, number>()
    const big = Buffer.alloc(3 * 1024 * 1024, 7)
    const srv = http.createServer((req, res) => {
      hits.set(req.url!, (hits.get(req.url!) ?? 0) + 1)
      switch (req.url) {
        case "/poster.bin":
          return res.end(Buffer.from("hello jasper"))
        case "/big":
          res.setHeader("content-length", big.length)
          return res.end(big)
        case "/big-chunked":
          res.write(big.subarray(0, 1 << 20))
          res.write(big.subarray(1 << 20, 2 << 20))
          return res.end(big.subarray(2 << 20))
        case "/moved":
          res.statusCode = 302
          res.setHeader("location", "/poster.bin")
          return res.end()
        case "/stall":
          res.write("partial")
          return // never ends
        case "/never":
          return // never answers
        default:
          res.statusCode = 404
          return res.end("not found")
      }
    })
    srv.listen(0, "127.0.0.1", () =>
      resume(Effect.succeed({ url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, hits, server: srv }))
    )
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
)

describe("Reader", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "jasper-reader-"))
  const root = path.join(tmp, "root")
  const outside = path.join(tmp, "outside")
  fs.mkdirSync(root)
  fs.mkdirSync(outside)
  fs.writeFileSync(path.join(root, "a.txt"), "inside")
  fs.writeFileSync(path.join(outside, "secret.txt"), "outside")
  fs.symlinkSync(path.join(outside, "secret.txt"), path.join(root, "link.txt"))
  const memory = new Reader.MemoryStore()
  const Readers = Reader.layer({ roots: [root], memory, http: { timeoutMs: 300, maxBytes: 2 * 1024 * 1024 } })

  layer(Readers)("file and memory", (it) => {
    it.effect("reads a file under a root by path or URI and hashes it while reading", () =>
      Effect.gen(function* () {
        const reader = yield* Reader.Reader
        const byPath = yield* reader.read(path.join(root, "a.txt"))
        expect(Buffer.from(byPath.bytes).toString()).toBe("inside")
        expect(byPath.sha256).toBe(sha(Buffer.from("inside")))
        const byUri = yield* reader.hash(pathToFileURL(path.join(root, "a.txt")).href)
        expect(byUri).toEqual({ sha256: byPath.sha256, byteSize: 6 })
      })
    )

    it.effect("refuses traversal out of the roots: .., encoded .., absolute paths and symlinks", () =>
      Effect.gen(function* () {
        const reader = yield* Reader.Reader
        for (const uri of [
          path.join(root, "..", "outside", "secret.txt"),
          `file://${root}/../outside/secret.txt`,
          `file://${root}/%2e%2e/outside/secret.txt`,
          path.join(outside, "secret.txt"),
          path.join(root, "link.txt"),
          "/etc/passwd"
        ]) {
          const error = yield* Effect.flip(reader.read(uri))
          expect(error._tag).toBe("ReadError")
          expect(error.reason).toBe("outside-root")
          expect(error.message).toContain("outside the reader's roots")
          // the path check decoders run first (a plain path skips the URI round trip) refuses the same
          const local = yield* Effect.flip(reader.filePath(uri))
          expect(local).toMatchObject({ _tag: "ReadError", reason: "outside-root", uri: Reader.uriOf(uri) })
        }
        const missing = yield* Effect.flip(reader.filePath(path.join(root, "nope.jpg")))
        expect(missing).toMatchObject({ reason: "not-found", uri: Reader.uriOf(path.join(root, "nope.jpg")) })
        const folder = yield* Effect.flip(reader.filePath(root))
        expect(folder).toMatchObject({ reason: "not-found" })
        expect(folder.message).toContain("not a regular file")
      })
    )

    it.effect("names missing files, unknown schemes and invalid URIs", () =>
      Effect.gen(function* () {
        const reader = yield* Reader.Reader
        const missing = yield* Effect.flip(reader.read(path.join(root, "nope.jpg")))
        expect(missing).toMatchObject({ reason: "not-found" })
        expect(missing.uri).toContain("nope.jpg")
        const scheme = yield* Effect.flip(reader.read("s3://bucket/key.jpg"))
        expect(scheme).toMatchObject({ reason: "unsupported-scheme", uri: "s3://bucket/key.jpg" })
      })
    )

    it.effect("reads memory entries in chunks and localizes them into a temporary file removed with the scope", () =>
      Effect.gen(function* () {
        const reader = yield* Reader.Reader
        const bytes = crypto.randomBytes(200_000)
        const uri = memory.put("clips/x.bin", bytes)
        const chunks = yield* Stream.runCollect(reader.stream(uri))
        expect(chunks.length).toBeGreaterThan(1)
        let kept = ""
        const local = yield* Effect.scoped(Effect.tap(reader.localize(uri), (l) => Effect.sync(() => (kept = l.path))))
        expect(local.temporary).toBe(true)
        expect(local.sha256).toBe(sha(bytes))
        expect(fs.existsSync(kept)).toBe(false)
        const none = yield* Effect.flip(reader.read("memory://absent"))
        expect(none.reason).toBe("not-found")
      })
    )

    it.effect("read refuses more than maxBytes", () =>
      Effect.gen(function* () {
        const reader = yield* Reader.Reader
        const uri = memory.put("big", new Uint8Array(100_000))
        const error = yield* Effect.flip(reader.read(uri, { maxBytes: 1000 }))
        expect(error.reason).toBe("too-large")
      })
    )

    it.effect("pulls lazily: taking the first chunk of a large source reads one chunk", () =>
      Effect.gen(function* () {
        const reader = yield* Reader.Reader
        let pulled = 0
        const counting = Reader.make([
          {
            schemes: ["count"],
            stream: () =>
              Stream.repeatEffect(Effect.sync(() => (pulled++, new Uint8Array(1024)))).pipe(Stream.take(10_000))
          }
        ])
        const first = yield* Stream.runCollect(Stream.take(counting.stream("count://x"), 2))
        expect(first.length).toBe(2)
        expect(pulled).toBeLessThan(10)
        expect(reader.schemes).toContain("memory")
      })
    )
  })

  it.effect("a user's layer adds a scheme", () =>
    Effect.gen(function* () {
      const reader = yield* Reader.Reader
      expect(reader.schemes).toContain("echo")
      const read = yield* reader.read("echo://hello")
      expect(Buffer.from(read.bytes).toString()).toBe("hello")
      // the built-in ones are still there
      expect(reader.schemes).toEqual(expect.arrayContaining(["file", "http", "https", "memory", "echo"]))
    }).pipe(
      Effect.provide(
        Reader.withScheme({
          schemes: ["echo"],
          stream: (url) => Stream.make(new TextEncoder().encode(url.host))
        }).pipe(Layer.provide(Readers))
      )
    )
  )

  it.effect("Reader.layer refuses unknown and bad options with a JasperConfigError naming the option", () =>
    Effect.gen(function* () {
      const fail = (options: unknown) =>
        Effect.flip(Effect.scoped(Layer.build(Reader.layer(options as Reader.LayerOptions))))
      const unknown = yield* fail({ rots: [root] })
      expect(unknown).toMatchObject({ _tag: "JasperConfigError", option: "rots" })
      expect(unknown.message).toContain('unknown option "rots"')
      const nested = yield* fail({ http: { timeOutMs: 5 } })
      expect(nested).toMatchObject({ _tag: "JasperConfigError", option: "http.timeOutMs" })
      expect(yield* fail({ http: { timeoutMs: -1 } })).toMatchObject({ option: "http.timeoutMs" })
      expect(yield* fail({ roots: root })).toMatchObject({ option: "roots" })
      expect(yield* fail({ schemes: [{}] })).toMatchObject({ option: "schemes.0" })
      // good options still build
      const reader = yield* Effect.scoped(
        Layer.build(Reader.layer({ roots: [root], http: false })).pipe(
          Effect.map((ctx) => Context.get(ctx, Reader.Reader))
        )
      )
      expect(reader.schemes).toEqual(["file", "memory"])
    })
  )

  layer(Readers)("http (timeouts are node socket timers, so the TestClock does not hold them)", (it) => {
    it.effect("reads a body, follows a redirect, and hashes it", () =>
      Effect.gen(function* () {
        const srv = yield* server
        const reader = yield* Reader.Reader
        const r = yield* reader.read(`${srv.url}/poster.bin`)
        expect(Buffer.from(r.bytes).toString()).toBe("hello jasper")
        expect(r.sha256).toBe(sha(Buffer.from("hello jasper")))
        const moved = yield* reader.read(`${srv.url}/moved`)
        expect(moved.sha256).toBe(r.sha256)
        const local = yield* reader.localize(`${srv.url}/poster.bin`)
        expect(fs.readFileSync(local.path, "utf8")).toBe("hello jasper")
      }).pipe(Effect.scoped)
    )

    it.effect("fails a 404 with the status and the URI", () =>
      Effect.gen(function* () {
        const srv = yield* server
        const reader = yield* Reader.Reader
        const error = yield* Effect.flip(reader.read(`${srv.url}/missing.jpg`))
        expect(error).toBeInstanceOf(JasperError.ReadError)
        expect(error).toMatchObject({ reason: "http-status", status: 404, uri: `${srv.url}/missing.jpg` })
      }).pipe(Effect.scoped)
    )

    it.effect("times out on a server that never answers and on one that stalls mid-body", () =>
      Effect.gen(function* () {
        const srv = yield* server
        const reader = yield* Reader.Reader
        const t0 = Date.now()
        const never = yield* Effect.flip(reader.read(`${srv.url}/never`))
        expect(never).toMatchObject({ reason: "timeout", uri: `${srv.url}/never` })
        expect(Date.now() - t0).toBeLessThan(5000)
        const stall = yield* Effect.flip(reader.read(`${srv.url}/stall`))
        expect(stall.reason).toBe("timeout")
      }).pipe(Effect.scoped)
    )

    it.effect("refuses bodies over the size limit, declared or streamed", () =>
      Effect.gen(function* () {
        const srv = yield* server
        const reader = yield* Reader.Reader
        const declared = yield* Effect.flip(reader.read(`${srv.url}/big`))
        expect(declared.reason).toBe("too-large")
        const streamed = yield* Effect.flip(reader.hash(`${srv.url}/big-chunked`))
        expect(streamed.reason).toBe("too-large")
      }).pipe(Effect.scoped)
    )
  })
})
