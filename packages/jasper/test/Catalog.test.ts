import { describe, expect, it, layer } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Layer, Option, Stream, TestServices } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { spawn } from "node:child_process"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { sql } from "kysely"
import sharp from "sharp"
import { Database } from "@org/storage"
import { StorageTesting } from "@org/storage/testing"
import { Audio, Catalog, Derivative, Image, Jasper, JasperError, Reader, Subtitles, Video } from "@org/jasper"
import { Fixtures, FixturesLive } from "./fixtures.js"

const memory = new Reader.MemoryStore()
const sha = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")

/** Jasper (reader confined to the fixtures, catalog, derivatives in a temp folder) on one storage adapter. */
const jasperOn = (storage: Layer.Layer<Database.Database, any>) =>
  Layer.unwrapScoped(
    Effect.gen(function* () {
      const fx = yield* Fixtures
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "jasper-derivatives-"))),
        (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true }))
      )
      return Jasper.layer({ roots: [fx.dir], memory, derivatives: dir }).pipe(Layer.provideMerge(storage))
    })
  ).pipe(Layer.provideMerge(FixturesLive), Layer.orDie)

const count = (table: string) =>
  Database.use("count", (k) =>
    k
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow()
  ).pipe(Effect.map((r) => Number(r.n)))

const root = path.resolve(import.meta.dirname, "../../..")

/** Removes a shared location: the PostgreSQL schema, or the SQLite file and its journals. */
const dropShared = (shared: { layer: Layer.Layer<Database.Database, any>; location: Record<string, string> }) =>
  Effect.gen(function* () {
    if (shared.location.kind === "pg") {
      yield* Database.use("cleanup", (db) =>
        sql`drop schema if exists ${sql.id(shared.location.schema!)} cascade`.execute(db)
      ).pipe(Effect.provide(shared.layer), Effect.scoped, Effect.ignore)
    } else {
      for (const suffix of ["", "-wal", "-shm"]) fs.rmSync(`${shared.location.filename}${suffix}`, { force: true })
    }
  })

const setup = Effect.gen(function* () {
  const catalog = yield* Catalog.Catalog
  yield* catalog.putEntity({ id: "title-1", kind: "title", title: "The Test", attributes: { year: 2026 } })
  yield* catalog.putEntity({ id: "art-1", kind: "artwork", parentId: "title-1" })
  yield* catalog.putEntity({ id: "art-2", kind: "artwork", parentId: "title-1" })
  yield* catalog.putEntity({ id: "ep-1", kind: "episode", parentId: "title-1", title: "Pilot" })
  yield* catalog.putEntity({ id: "trailer-1", kind: "trailer", parentId: "title-1" })
  return catalog
})

for (const adapter of StorageTesting.adapters()) {
  if (adapter.skip) {
    describe.skip(`Catalog conformance on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    console.warn(`[jasper] ${adapter.skip}`)
    continue
  }

  layer(jasperOn(adapter.layer), { timeout: 60_000 })(`Catalog conformance on ${adapter.name}`, (it) => {
    it.effect("refuses unknown and bad options with a JasperConfigError naming the option", () =>
      Effect.gen(function* () {
        const unknown = yield* Effect.flip(Catalog.make({ pixelLimt: 5 } as Catalog.Options))
        expect(unknown).toMatchObject({ _tag: "JasperConfigError", option: "pixelLimt" })
        expect(unknown.message).toContain('unknown option "pixelLimt"')
        const bad = yield* Effect.flip(Catalog.make({ pixelLimit: -1 }))
        expect(bad).toMatchObject({ _tag: "JasperConfigError", option: "pixelLimit" })
        const dir = yield* Effect.flip(Derivative.make({ dir: "" }))
        expect(dir).toMatchObject({ _tag: "JasperConfigError", option: "dir" })
      })
    )

    it.effect("stores entities with parent/child relations and refuses cycles and bad input", () =>
      Effect.gen(function* () {
        const catalog = yield* setup
        const artworks = yield* catalog.children("title-1", { kind: "artwork" })
        expect(artworks.map((e) => e.id)).toEqual(["art-1", "art-2"])
        expect((yield* catalog.children("title-1")).length).toBe(4)
        expect((yield* catalog.ancestors("art-1")).map((e) => e.id)).toEqual(["title-1"])
        const title = yield* catalog.getEntity("title-1")
        expect(title).toEqual({ id: "title-1", kind: "title", title: "The Test", attributes: { year: 2026 } })
        const cycle = yield* Effect.flip(catalog.putEntity({ id: "title-1", kind: "title", parentId: "art-1" }))
        expect(cycle).toMatchObject({ _tag: "InvalidInputError", subject: "entity title-1" })
        const orphan = yield* Effect.flip(catalog.putEntity({ id: "x", kind: "artwork", parentId: "nope" }))
        expect(orphan).toMatchObject({ _tag: "EntityNotFoundError", entityId: "nope" })
        const before = yield* count("jasper_entities")
        const bad = yield* Effect.flip(catalog.putEntity({ id: "", kind: "title" }))
        expect(bad._tag).toBe("InvalidInputError")
        expect(yield* count("jasper_entities")).toBe(before)
        expect((yield* catalog.getEntity("title-1")).parentId).toBeUndefined()
      })
    )

    it.effect("registers by reading, hashing and probing; identical content returns the existing asset", () =>
      Effect.gen(function* () {
        const catalog = yield* setup
        const fx = yield* Fixtures
        const head = yield* catalog.head
        const poster = yield* catalog.register({
          entityId: "art-1",
          role: "poster",
          uri: fx.poster,
          labels: { locale: "en" }
        })
        expect(poster).toMatchObject({
          entityId: "art-1",
          role: "poster",
          version: 1,
          mediaType: "image",
          sha256: sha(fx.poster),
          byteSize: fs.statSync(fx.poster).size,
          metadata: { _tag: "image", width: 240, height: 360, format: "jpeg", colorSpace: "srgb" },
          labels: { locale: "en" }
        })
        expect(poster.uri).toMatch(/^file:\/\//)
        expect(yield* catalog.get(poster.id)).toEqual(poster)
        const again = yield* catalog.register({ entityId: "art-1", role: "poster", uri: fx.poster })
        expect(again).toEqual(poster)
        // the same bytes from another location (memory) are still the same content
        const copy = yield* catalog.register({
          entityId: "art-1",
          role: "poster",
          uri: memory.put("copy.jpg", fs.readFileSync(fx.poster))
        })
        expect(copy.id).toBe(poster.id)
        const changes = yield* catalog.changes(head)
        expect(changes.map((c) => [c.kind, c.assetId])).toEqual([["added", poster.id]])
        const missing = yield* Effect.flip(catalog.get("asset_nope"))
        expect(missing).toMatchObject({ _tag: "AssetNotFoundError", assetId: "asset_nope" })
      })
    )

    it.effect("new content under the same entity and role is a new version; the old one stays readable", () =>
      Effect.gen(function* () {
        const catalog = yield* setup
        const fx = yield* Fixtures
        const v1 = yield* catalog.register({ entityId: "art-2", role: "poster", uri: fx.poster })
        const v2 = yield* catalog.register({ entityId: "art-2", role: "poster", uri: fx.posterB })
        expect([v1.version, v2.version]).toEqual([1, 2])
        expect(v2.id).not.toBe(v1.id)
        expect((yield* catalog.versions("art-2", "poster")).map((a) => a.id)).toEqual([v1.id, v2.id])
        const latest = yield* catalog.list({ entityId: "art-2", latest: true })
        expect(latest.map((a) => a.id)).toEqual([v2.id])
        const old = yield* catalog.get(v1.id)
        const pixels = yield* Image.decode(old, { resize: { width: 8, height: 8 } })
        expect(pixels.shape).toEqual([8, 8, 3])
        const feed = (yield* catalog.changes(0)).filter((c) => c.entityId === "art-2")
        expect(feed.map((c) => [c.kind, c.version])).toEqual([
          ["added", 1],
          ["changed", 2]
        ])
      })
    )

    it.effect("probes video, audio and text exactly (rational frame rate, audio track, cues)", () =>
      Effect.gen(function* () {
        const catalog = yield* setup
        const fx = yield* Fixtures
        const video = yield* catalog.register({ entityId: "trailer-1", role: "source", uri: fx.cuts })
        expect(video.metadata).toEqual({
          _tag: "video",
          durationNs: 3_003_000_000,
          frameRate: { num: 30000, den: 1001 },
          width: 160,
          height: 90,
          codec: "h264",
          frameCount: 90,
          audio: { sampleRate: 48000, channels: 1, codec: "aac", startNs: 0 },
          rotation: 0,
          displayWidth: 160,
          displayHeight: 90,
          startNs: 0,
          containerStartNs: 0,
          timeBase: { num: 1, den: 30000 },
          constantRate: true,
          endNs: 3_003_000_000
        })
        // an EXIF-rotated poster: the catalog stores the display size decode returns, beside the stored one
        const turned = yield* catalog.register({ entityId: "ep-1", role: "exif-poster", uri: fx.exifRotated })
        expect(turned.metadata).toMatchObject({ width: 400, height: 300, displayWidth: 300, displayHeight: 400 })
        const shown = yield* Image.decode(turned)
        expect([shown.width, shown.height]).toEqual([300, 400])
        const film = yield* catalog.register({ entityId: "ep-1", role: "source", uri: fx.ntsc24 })
        expect(film.metadata).toMatchObject({ frameRate: { num: 24000, den: 1001 }, frameCount: 48 })
        const tone = yield* catalog.register({ entityId: "ep-1", role: "audio", uri: fx.tone })
        expect(tone.metadata).toEqual({
          _tag: "audio",
          durationNs: 1_000_000_000,
          sampleRate: 48000,
          channels: 2,
          codec: "pcm_s16le",
          startNs: 0,
          containerStartNs: 0
        })
        const subs = yield* catalog.register({ entityId: "ep-1", role: "subtitles:en", uri: fx.vtt, language: "en" })
        expect(subs.metadata).toEqual({ _tag: "text", format: "vtt", cues: 3, language: "en" })
        // registered assets decode directly (their probed metadata is reused)
        const frames = yield* Stream.runCollect(Video.frames(video, { fps: 1, width: 32 }))
        expect(Chunk.toArray(frames).map((f) => f.sourceFrame)).toEqual([0, 29, 59, 89])
        const pcm = yield* Stream.runCollect(Audio.pcm(video, { sampleRate: 8000 }))
        expect(pcm.length).toBeGreaterThan(0)
        expect(yield* Video.shots(video)).toHaveLength(3)
        expect((yield* Subtitles.decode(subs)).map((c) => c.text)).toContain("Blue.")
      })
    )

    it.effect("lists with filters: entity, children of a kind, role, media type, hash, label, paging", () =>
      Effect.gen(function* () {
        const catalog = yield* setup
        const fx = yield* Fixtures
        // the suite shares one database: roles of its own keep this test's assets apart
        const a = yield* catalog.register({
          entityId: "art-1",
          role: "key-art",
          uri: fx.poster,
          labels: { locale: "en" }
        })
        const b = yield* catalog.register({
          entityId: "art-2",
          role: "key-art",
          uri: fx.posterB,
          labels: { locale: "fr" }
        })
        const t = yield* catalog.register({ entityId: "trailer-1", role: "teaser", uri: fx.cuts })
        const ids = (xs: ReadonlyArray<{ id: string }>) => xs.map((x) => x.id)
        const artworks = yield* catalog.list({ childrenOf: { entityId: "title-1", kind: "artwork" }, latest: true })
        expect(ids(artworks)).toEqual(expect.arrayContaining([a.id, b.id]))
        expect(ids(artworks)).not.toContain(t.id)
        expect(ids(yield* catalog.list({ mediaType: "video" }))).toContain(t.id)
        expect(ids(yield* catalog.list({ mediaType: "video" }))).not.toContain(a.id)
        expect(ids(yield* catalog.list({ sha256: a.sha256, entityId: "art-1", role: "key-art" }))).toEqual([a.id])
        expect(ids(yield* catalog.list({ label: { key: "locale", value: "fr" } }))).toEqual([b.id])
        expect(ids(yield* catalog.list({ entityId: "art-1", role: "key-art" }))).toEqual([a.id])
        expect(ids(yield* catalog.list({ role: "key-art", mediaType: "image" }))).toEqual([a.id, b.id])
        const injection = yield* Effect.flip(catalog.list({ label: { key: "x') or 1=1 --", value: "y" } }))
        expect(injection._tag).toBe("InvalidInputError")
        const all = yield* catalog.list()
        const page = yield* catalog.list({ limit: 2, offset: 1 })
        expect(ids(page)).toEqual(ids(all).slice(1, 3))
      })
    )

    it.effect("a metadata-only update keeps content identity and is marked as such in the feed", () =>
      Effect.gen(function* () {
        const catalog = yield* setup
        const fx = yield* Fixtures
        const a = yield* catalog.register({ entityId: "art-1", role: "poster", uri: fx.poster })
        const head = yield* catalog.head
        const updated = yield* catalog.updateLabels(a.id, { reviewed: true }, { merge: true })
        expect(updated).toMatchObject({ id: a.id, sha256: a.sha256, version: a.version, byteSize: a.byteSize })
        expect(updated.labels.reviewed).toBe(true)
        const stored = yield* catalog.get(a.id)
        expect(stored.labels.reviewed).toBe(true)
        expect(stored.sha256).toBe(a.sha256)
        const feed = yield* catalog.changes(head)
        expect(feed.map((c) => [c.kind, c.assetId, c.sha256, c.version])).toEqual([
          ["metadata", a.id, a.sha256, a.version]
        ])
        const invalid = yield* Effect.flip(catalog.updateLabels(a.id, { nested: { no: 1 } } as any))
        expect(invalid._tag).toBe("InvalidInputError")
        const gone = yield* Effect.flip(catalog.updateLabels("asset_nope", {}))
        expect(gone._tag).toBe("AssetNotFoundError")
        expect(yield* catalog.head).toBe(head + 1)
      })
    )

    it.effect("a batch goes on past bad assets, with a tagged error per bad item and nothing written for it", () =>
      Effect.gen(function* () {
        const catalog = yield* setup
        const fx = yield* Fixtures
        const assets = yield* count("jasper_assets")
        const changes = yield* count("jasper_changes")
        const batch = [
          { entityId: "ep-1", role: "still", uri: fx.broken.truncatedJpeg },
          { entityId: "ep-1", role: "source", uri: fx.cuts },
          { entityId: "ep-1", role: "bomb", uri: fx.broken.pixelBomb },
          { entityId: "ep-1", role: "empty", uri: fx.broken.empty },
          { entityId: "ep-1", role: "text", uri: fx.broken.textAsMp4 },
          { entityId: "ep-1", role: "codec", uri: fx.broken.unknownCodec },
          { entityId: "ep-1", role: "cut", uri: fx.broken.truncatedMp4 },
          { entityId: "ep-1", role: "subs", uri: fx.broken.badSrt },
          { entityId: "ep-1", role: "missing", uri: path.join(fx.dir, "nope.jpg") },
          { entityId: "ep-1", role: "escape", uri: path.join(fx.dir, "..", "etc.jpg") },
          { entityId: "ep-1", role: "what", uri: path.join(fx.dir, "subtitles.srt.bin") },
          { entityId: "nobody", role: "poster", uri: fx.poster },
          { entityId: "ep-1", role: "", uri: fx.poster },
          { entityId: "ep-1", role: "poster", uri: fx.posterB }
        ]
        const results = yield* catalog.registerAll(batch, { concurrency: 3 })
        const tags = results.map((r) => (Either.isRight(r) ? "ok" : r.left._tag))
        expect(tags).toEqual([
          "DecodeError",
          "ok",
          "PixelLimitError",
          "DecodeError",
          "DecodeError",
          "UnsupportedMediaError",
          "DecodeError",
          "SubtitleError",
          "ReadError",
          "ReadError",
          "UnsupportedMediaError",
          "EntityNotFoundError",
          "InvalidInputError",
          "ok"
        ])
        // every error names what was wrong: the file, the entity or the registration
        results.forEach((r, i) => {
          if (Either.isRight(r)) return
          const named = i === 11 ? "nobody" : path.basename(batch[i]!.uri)
          expect(r.left.message).toContain(named)
        })
        expect(yield* count("jasper_assets")).toBe(assets + 2)
        expect(yield* count("jasper_changes")).toBe(changes + 2)
      })
    )

    it.effect(
      "the change feed is ordered and gap-free under concurrent registrations, readable from any position",
      () =>
        Effect.gen(function* () {
          const catalog = yield* setup
          const start = yield* catalog.head
          const uris = Array.from({ length: 8 }, (_, i) =>
            memory.put(`notes/${adapter.name}-${i}-${Date.now()}.txt`, `note ${i}`)
          )
          const results = yield* catalog.registerAll(
            uris.map((uri, i) => ({ entityId: "ep-1", role: `note-${i}`, uri })),
            { concurrency: 8 }
          )
          expect(results.every(Either.isRight)).toBe(true)
          const feed = yield* catalog.changes(start)
          expect(feed.map((c) => c.seq)).toEqual(Array.from({ length: 8 }, (_, i) => start + i + 1))
          expect(new Set(feed.map((c) => c.assetId)).size).toBe(8)
          const tail = yield* catalog.changes(start + 5)
          expect(tail.map((c) => c.seq)).toEqual([start + 6, start + 7, start + 8])
          expect(yield* catalog.changes(start + 8)).toEqual([])
          const limited = yield* catalog.changes(start, { limit: 3 })
          expect(limited.length).toBe(3)
          // follow reads the same events as a stream from any position
          const followed = yield* Stream.runCollect(Stream.take(catalog.follow(start + 2), 6))
          expect(Chunk.toArray(followed)).toEqual(feed.slice(2))
        })
    )

    it.effect("a follower caught up is woken by a commit: LISTEN/NOTIFY on PostgreSQL, polling elsewhere", () =>
      TestServices.provideLive(
        Effect.gen(function* () {
          const catalog = yield* setup
          const database = yield* Database.Database
          const notified = database.capabilities.listenNotify
          expect(database.listen !== undefined).toBe(notified)
          const start = yield* catalog.head
          // with LISTEN, a poll interval of a minute: only the notification can deliver in time
          const follower = yield* Effect.fork(
            Stream.runCollect(Stream.take(catalog.follow(start, { pollMs: notified ? 60_000 : 50 }), 1))
          )
          yield* Effect.sleep("300 millis")
          const uri = memory.put(`notes/${adapter.name}-follow-${Date.now()}.txt`, "wake up")
          const asset = yield* catalog.register({ entityId: "ep-1", role: `follow-${Date.now()}`, uri })
          const got = yield* Fiber.join(follower).pipe(Effect.timeout("15 seconds"))
          expect(Chunk.toArray(got).map((c) => c.assetId)).toEqual([asset.id])
        })
      )
    )

    it.effect("content already in the catalog under another entity or role is not probed again", () =>
      Effect.gen(function* () {
        const catalog = yield* setup
        const bytes = yield* Effect.promise(() =>
          sharp({
            create: { width: 20, height: 10, channels: 3, background: { r: adapter.name.length * 9, g: 1, b: 2 } }
          })
            .png()
            .toBuffer()
        )
        const first = yield* catalog.register({
          entityId: "art-1",
          role: `twin-a-${Date.now()}`,
          uri: memory.put(`twin-a-${adapter.name}-${Date.now()}.png`, bytes)
        })
        // mark the stored metadata: a second probe would not reproduce the mark
        const marked = { ...first.metadata, format: "marked-at-first-probe" }
        yield* Database.use("mark", (k) =>
          k
            .updateTable("jasper_assets")
            .set({ metadata: JSON.stringify(marked) })
            .where("id", "=", first.id)
            .execute()
        )
        const second = yield* catalog.register({
          entityId: "art-2",
          role: "twin-b",
          uri: memory.put(`twin-b-${adapter.name}-${Date.now()}.png`, bytes)
        })
        expect(second.id).not.toBe(first.id)
        expect(second.metadata).toEqual(marked)
      })
    )

    it.effect("derivatives are produced once per content hash and spec version, then read", () =>
      Effect.gen(function* () {
        const catalog = yield* setup
        const derivatives = yield* Derivative.Derivatives
        const fx = yield* Fixtures
        let produced = 0
        const base = Derivative.imageTensor({ width: 32, height: 32, name: `thumb-${adapter.name}` })
        const counted = (spec: Derivative.Spec<Image.Tensor>): Derivative.Spec<Image.Tensor> => ({
          ...spec,
          produce: (input) =>
            Effect.zipRight(
              Effect.sync(() => produced++),
              spec.produce(input)
            )
        })
        const spec = counted(base)
        const a = yield* catalog.register({ entityId: "art-1", role: "poster", uri: fx.poster })
        const first = yield* derivatives.get(a, spec)
        expect(first.shape).toEqual([32, 32, 3])
        expect(produced).toBe(1)
        const second = yield* derivatives.get(a.id, spec)
        expect(produced).toBe(1)
        expect(Buffer.from(second.data).equals(Buffer.from(first.data))).toBe(true)
        const direct = yield* Image.decode(a, { resize: { width: 32, height: 32 } })
        expect(Buffer.from(direct.data).equals(Buffer.from(first.data))).toBe(true)
        // the same content under another entity shares the derivative
        const same = yield* catalog.register({ entityId: "art-2", role: "poster", uri: fx.poster })
        expect(same.id).not.toBe(a.id)
        yield* derivatives.get(same, spec)
        expect(produced).toBe(1)
        // a metadata-only change does not recompute
        yield* catalog.updateLabels(a.id, { tagged: "yes" })
        yield* derivatives.get(yield* catalog.get(a.id), spec)
        expect(produced).toBe(1)
        // a new spec version and new content do
        yield* derivatives.get(a, counted({ ...base, version: 2 }))
        expect(produced).toBe(2)
        // concurrent requests for a derivative not yet stored produce it once
        const together = counted(Derivative.imageTensor({ width: 16, height: 16, name: `tiny-${adapter.name}` }))
        const results = yield* Effect.all(
          Array.from({ length: 4 }, () => derivatives.get(a, together)),
          { concurrency: "unbounded" }
        )
        expect(produced).toBe(3)
        expect(results.every((r) => Buffer.from(r.data).equals(Buffer.from(results[0]!.data)))).toBe(true)
        const b = yield* catalog.register({ entityId: "art-1", role: "poster", uri: fx.posterB })
        yield* derivatives.get(b, spec)
        expect(produced).toBe(4)
        const entry = yield* derivatives.lookup(a.sha256, base)
        expect(Option.isSome(entry)).toBe(true)
        if (Option.isSome(entry)) {
          expect(entry.value.path.startsWith(derivatives.dir)).toBe(true)
          expect(fs.statSync(entry.value.path).size).toBe(32 * 32 * 3)
          expect(entry.value.metadata).toEqual({ width: 32, height: 32, channels: 3 })
        }
        expect((yield* derivatives.list(a.sha256)).map((e) => `${e.spec}/v${e.specVersion}`).sort()).toEqual([
          `thumb-${adapter.name}/v1`,
          `thumb-${adapter.name}/v2`,
          `tiny-${adapter.name}/v1`
        ])
      })
    )

    it.effect("video frame derivatives are written while decoding and read back; a failing spec stores nothing", () =>
      Effect.gen(function* () {
        const catalog = yield* setup
        const derivatives = yield* Derivative.Derivatives
        const fx = yield* Fixtures
        const video = yield* catalog.register({ entityId: "trailer-1", role: "source", uri: fx.cuts })
        const spec = Derivative.videoFrames({ fps: 1, width: 64 })
        expect(spec.name).toBe("video-1fps-64px")
        const frames = yield* derivatives.get(video, spec)
        expect([frames.width, frames.height]).toEqual([64, 36])
        expect(frames.frames.map((f) => f.sourceFrame)).toEqual([0, 29, 59, 89])
        expect(frames.frames[1]!.data.length).toBe(64 * 36 * 3)
        const again = yield* derivatives.ensure(video, spec)
        expect(again.produced).toBe(false)
        const failing = Derivative.spec<number>({
          name: "always-fails",
          version: 1,
          mediaType: "video",
          extension: "bin",
          produce: ({ asset }) =>
            Effect.fail(
              new JasperError.DerivativeError({
                spec: "always-fails",
                specVersion: 1,
                sha256: asset.sha256,
                message: "no"
              })
            ),
          read: () => Effect.succeed(0)
        })
        const error = yield* Effect.flip(derivatives.get(video, failing))
        expect(error).toMatchObject({ _tag: "DerivativeError", spec: "always-fails", sha256: video.sha256 })
        expect(Option.isNone(yield* derivatives.lookup(video.sha256, failing))).toBe(true)
        const bad = yield* Effect.flip(
          derivatives.get(video, {
            ...failing,
            produce: (i) => Derivative.imageTensor({ width: 4, height: 4 }).produce(i)
          })
        )
        expect(bad._tag).toBe("DecodeError")
        expect(Option.isNone(yield* derivatives.lookup(video.sha256, failing))).toBe(true)
        expect(() => Derivative.spec({ ...failing, name: "Bad Name" })).toThrow(/lowercase/)
      })
    )
  })

  if (adapter.name !== "sqlite-memory") {
    it.live(
      `two processes registering at once get one gap-free feed (${adapter.name})`,
      () =>
        Effect.gen(function* () {
          const key = `jasper_procs_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`
          const shared = adapter.shared(key)
          yield* Effect.addFinalizer(() => dropShared(shared))
          // migrate first, so that the children race on registrations rather than on migrations
          yield* Effect.scoped(Layer.build(jasperOn(shared.layer)))
          const child = (prefix: string) =>
            Effect.async<number>((resume) => {
              const p = spawn(
                path.join(root, "node_modules/.bin/tsx"),
                [
                  "--conditions=@org/source",
                  path.join(import.meta.dirname, "child-register.ts"),
                  JSON.stringify(shared.location),
                  prefix,
                  "6"
                ],
                { cwd: root, stdio: ["ignore", "ignore", "inherit"] }
              )
              p.on("close", (code) => resume(Effect.succeed(code ?? -1)))
              return Effect.sync(() => p.kill("SIGKILL"))
            })
          const codes = yield* Effect.all([child("a"), child("b")], { concurrency: 2 })
          expect(codes).toEqual([0, 0])
          const feed = yield* Effect.scoped(
            Effect.flatMap(Layer.build(jasperOn(shared.layer)), (ctx) =>
              Effect.provide(
                Effect.flatMap(Catalog.Catalog, (c) => c.changes(0)),
                ctx
              )
            )
          )
          expect(feed.map((c) => c.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1))
          expect(new Set(feed.map((c) => c.role)).size).toBe(12)
          expect(feed.every((c) => c.kind === "added")).toBe(true)
        }).pipe(Effect.scoped),
      // two tsx processes: slow on a loaded machine
      240_000
    )

    it.live(
      `two processes asking for one derivative: one produces it, the other waits and reads it (${adapter.name})`,
      () =>
        Effect.gen(function* () {
          const key = `jasper_derive_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`
          const shared = adapter.shared(key)
          yield* Effect.addFinalizer(() => dropShared(shared))
          const work = yield* Effect.acquireRelease(
            Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "jasper-derive-"))),
            (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true }))
          )
          const log = path.join(work, "produced.log")
          // the fixtures live until the test ends (the children read them)
          const asset = yield* Effect.flatMap(Layer.build(jasperOn(shared.layer)), (ctx) =>
            Effect.provide(
              Effect.gen(function* () {
                const catalog = yield* setup
                const fx = yield* Fixtures
                return { asset: yield* catalog.register({ entityId: "art-1", role: "poster", uri: fx.poster }), fx }
              }),
              ctx
            )
          )
          const child = () =>
            Effect.async<{ code: number; out: string }>((resume) => {
              let out = ""
              const p = spawn(
                path.join(root, "node_modules/.bin/tsx"),
                [
                  "--conditions=@org/source",
                  path.join(import.meta.dirname, "child-derive.ts"),
                  JSON.stringify(shared.location),
                  asset.fx.dir,
                  path.join(work, "derivatives"),
                  asset.asset.id,
                  log
                ],
                { cwd: root, stdio: ["ignore", "pipe", "inherit"] }
              )
              p.stdout.on("data", (d) => (out += d))
              p.on("close", (code) => resume(Effect.succeed({ code: code ?? -1, out })))
              return Effect.sync(() => p.kill("SIGKILL"))
            })
          const results = yield* Effect.all([child(), child()], { concurrency: 2 })
          expect(results.map((r) => r.code)).toEqual([0, 0])
          const entries = results.map((r) => JSON.parse(r.out.trim().split("\n").pop()!))
          expect(fs.readFileSync(log, "utf8").trim().split("\n")).toHaveLength(1)
          expect(entries.map((e) => e.produced).sort()).toEqual([false, true])
          expect(entries[0].path).toBe(entries[1].path)
          expect(fs.existsSync(entries[0].path)).toBe(true)
        }).pipe(Effect.scoped),
      // two tsx processes and the fixtures: slow on a loaded machine
      240_000
    )

    it.effect(`the change feed survives reopening the database (${adapter.name})`, () =>
      Effect.gen(function* () {
        const key = `jasper_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`
        const shared = adapter.shared(key)
        const once = <A, E>(f: Effect.Effect<A, E, Catalog.Catalog | Fixtures>) =>
          Effect.scoped(Effect.flatMap(Layer.build(jasperOn(shared.layer)), (ctx) => Effect.provide(f, ctx)))
        yield* Effect.addFinalizer(() => dropShared(shared))
        const written = yield* once(
          Effect.gen(function* () {
            const catalog = yield* setup
            const fx = yield* Fixtures
            yield* catalog.register({ entityId: "art-1", role: "poster", uri: fx.poster })
            yield* catalog.register({ entityId: "art-1", role: "poster", uri: fx.posterB })
            return yield* catalog.changes(0)
          })
        )
        const reread = yield* once(Effect.flatMap(Catalog.Catalog, (c) => c.changes(0)))
        expect(reread).toEqual(written)
        expect(written.map((c) => c.seq)).toEqual([1, 2])
      }).pipe(Effect.scoped)
    )
  }
}

describe("Catalog over http", () => {
  it.effect("registers from an http server; a 404 and a silent server fail their items and the batch goes on", () =>
    Effect.gen(function* () {
      const fx = yield* Fixtures
      const srv = yield* Effect.acquireRelease(
        Effect.async<{ url: string; server: http.Server }>((resume) => {
          const server = http.createServer((req, res) => {
            if (req.url === "/poster.jpg") return res.end(fs.readFileSync(fx.poster))
            if (req.url === "/silent.jpg") return // never answers
            res.statusCode = 404
            res.end()
          })
          server.listen(0, "127.0.0.1", () =>
            resume(Effect.succeed({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }))
          )
        }),
        ({ server }) =>
          Effect.async<void>((resume) => {
            server.closeAllConnections()
            server.close(() => resume(Effect.void))
          })
      )
      const catalog = yield* setup
      const results = yield* catalog.registerAll([
        { entityId: "art-1", role: "poster", uri: `${srv.url}/missing.jpg` },
        { entityId: "art-1", role: "poster", uri: `${srv.url}/silent.jpg` },
        { entityId: "art-1", role: "poster", uri: `${srv.url}/poster.jpg` }
      ])
      const [missing, silent, ok] = results
      expect(Either.isLeft(missing!) && missing.left).toMatchObject({
        _tag: "ReadError",
        reason: "http-status",
        status: 404,
        uri: `${srv.url}/missing.jpg`
      })
      expect(Either.isLeft(silent!) && silent.left).toMatchObject({ _tag: "ReadError", reason: "timeout" })
      expect(Either.isRight(ok!) && ok.right).toMatchObject({ sha256: sha(fx.poster), uri: `${srv.url}/poster.jpg` })
      if (Either.isRight(ok!)) {
        const tensor = yield* Image.decode(ok.right, { resize: { width: 16, height: 16 } })
        expect(tensor.shape).toEqual([16, 16, 3])
      }
      expect((yield* catalog.changes(0)).length).toBe(1)
    }).pipe(
      Effect.scoped,
      Effect.provide(
        Layer.unwrapEffect(
          Effect.map(Fixtures, (fx) =>
            Jasper.layer({ roots: [fx.dir], http: { timeoutMs: 500 }, derivatives: path.join(fx.dir, "derived") })
          )
        ).pipe(Layer.provideMerge(FixturesLive), Layer.provide(StorageTesting.adapters()[0]!.layer), Layer.orDie)
      )
    )
  )
})
