/**
 * Match cutting (after Netflix's "match cutting" work): a few videos -> shots -> one keyframe embedding per shot,
 * materialized by an Amber trigger on Jasper's change feed -> the most similar shot pairs across videos, found by
 * Marken's vector pairs -> a contact sheet of the top pairs.
 */
import { Effect, Layer, Schema, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import sharp, { type OverlayOptions } from "sharp"
import { EntitySource, Executor, Resolver, Trigger } from "@org/amber-compute"
import { FeatureStore } from "@org/amber-store"
import { EMBEDDING, mesh, readValues, VideoKeyframes } from "@org/example-artwork-personalization/mesh"
import { trailer } from "@org/example-artwork-personalization/world"
import { Catalog, Jasper, Video } from "@org/jasper"
import { Annotations, AnnotationType, Registry } from "@org/marken"
import type { Database } from "@org/storage"

export const Shot = AnnotationType.make({
  name: "match-cut-shot",
  version: "1.0",
  payload: Schema.Struct({ video: Schema.String, index: Schema.Int }),
  vectors: { keyframe: { dimension: EMBEDDING, metric: "cosine" } }
})

/** Test patterns the videos cut between; neighbouring videos share some, so real matches exist. */
const SCENES = [
  "testsrc",
  "smptebars",
  "rgbtestsrc",
  "testsrc2",
  "color=c=0x1f3a5f",
  "color=c=0xc8553d",
  "color=c=0xf2d0a4"
]

export interface Options {
  readonly data: string
  readonly storage: Layer.Layer<Database.Database, unknown>
  /** Videos to make (2 to 12, default 4). */
  readonly videos?: number
  /** Pairs on the contact sheet (default 4). */
  readonly pairs?: number
}

export interface Result {
  readonly videos: ReadonlyArray<string>
  readonly shots: number
  readonly computed: Readonly<Record<string, number>>
  readonly pairs: ReadonlyArray<{
    readonly left: { readonly video: string; readonly index: number; readonly startNs: number }
    readonly right: { readonly video: string; readonly index: number; readonly startNs: number }
    readonly distance: number
  }>
  readonly sheet: string
}

export const run = (options: Options) =>
  Effect.gen(function* () {
    const count = options.videos ?? 4
    const mediaDir = path.join(options.data, "media")
    fs.mkdirSync(mediaDir, { recursive: true })
    const videos = Array.from({ length: count }, (_, i) => ({
      id: `video-${i + 1}`,
      file: path.join(mediaDir, `video-${i + 1}.mp4`),
      scenes: [0, 1, 2].map((k) => SCENES[(i * 2 + k) % SCENES.length]!)
    }))
    for (const v of videos) yield* trailer(v.file, v.scenes)

    // register, then let the trigger materialize shots and keyframes
    const catalog = yield* Catalog.Catalog
    for (const v of videos) {
      yield* catalog.putEntity({ id: v.id, kind: "video" })
      yield* catalog.register({ entityId: v.id, role: "trailer", uri: v.file })
    }
    const trigger = yield* Trigger.make({ name: "match-cutting", features: [VideoKeyframes] })
    const steps = yield* trigger.catchUp
    const computed: Record<string, number> = {}
    for (const r of steps.flatMap((s) => s.runs))
      for (const [label, c] of Object.entries(r.features)) computed[label] = (computed[label] ?? 0) + c.computed
    const keyframes = yield* readValues(
      VideoKeyframes,
      videos.map((v) => v.id)
    )

    // Marken: one operation of shot keyframes, then the most similar pairs across videos
    const annotations = yield* Annotations.Annotations
    yield* (yield* Registry.Registry).register(Shot)
    const op = yield* annotations.start({
      type: Shot.name,
      version: Shot.version,
      producer: { algorithm: "keyframes", version: "1", key: "match-cutting" }
    })
    const items = videos.flatMap((v) =>
      keyframes.get(v.id)!.map((s, index) => ({
        entity: v.id,
        key: `${v.id}/${index}`,
        time: { startNs: s.startNs, endNs: s.endNs },
        payload: { video: v.id, index },
        vectors: { keyframe: s.embedding }
      }))
    )
    yield* annotations.upsert(op.id, items)
    yield* annotations.finish(op.id)
    const found: Array<{ left: string; right: string; distance: number }> = []
    for (const [n, v] of videos.entries()) {
      const others = videos.slice(n + 1).map((o) => o.id)
      if (others.length === 0) continue
      found.push(
        ...(yield* annotations.pairs({
          type: Shot.name,
          version: Shot.version,
          field: "keyframe",
          left: { where: [{ field: "video", op: "eq", value: v.id }] },
          right: { where: [{ field: "video", op: "in", values: others }] },
          k: 3
        }))
      )
    }
    found.sort((a, b) => a.distance - b.distance)
    const top = found.slice(0, options.pairs ?? 4)
    const shotOf = (id: string) =>
      Effect.map(annotations.get(id), (a) => ({
        ...(a.payload as { video: string; index: number }),
        startNs: a.time!.startNs,
        midNs: Math.floor((a.time!.startNs + a.time!.endNs) / 2)
      }))
    const pairs = yield* Effect.forEach(top, (p) =>
      Effect.map(Effect.all([shotOf(p.left), shotOf(p.right)]), ([left, right]) => ({
        left,
        right,
        distance: p.distance
      }))
    )

    // the contact sheet: one row per pair, the two keyframes side by side
    const frame = (video: string, at: number) =>
      Effect.gen(function* () {
        const file = videos.find((v) => v.id === video)!.file
        const frames: Array<Video.Frame> = []
        yield* Video.frames(file, { at: [at], width: 96 }).pipe(
          Stream.runForEach((f) => Effect.sync(() => frames.push(f)))
        )
        const f = frames[0]!
        return yield* Effect.promise(() =>
          sharp(Buffer.from(f.data), { raw: { width: f.width, height: f.height, channels: 3 } })
            .png()
            .toBuffer()
        )
      })
    const W = 96
    const H = 64
    const gap = 8
    const composites: Array<OverlayOptions> = []
    for (const [row, p] of pairs.entries()) {
      composites.push({ input: yield* frame(p.left.video, p.left.midNs), left: gap, top: gap + row * (H + gap) })
      composites.push({
        input: yield* frame(p.right.video, p.right.midNs),
        left: 2 * gap + W,
        top: gap + row * (H + gap)
      })
    }
    const sheet = path.join(options.data, "contact-sheet.png")
    yield* Effect.promise(() =>
      sharp({
        create: {
          width: 3 * gap + 2 * W,
          height: gap + Math.max(1, pairs.length) * (H + gap),
          channels: 3,
          background: "#ffffff"
        }
      })
        .composite(composites)
        .png()
        .toFile(sheet)
    )
    return {
      videos: videos.map((v) => v.id),
      shots: items.length,
      computed,
      pairs: pairs.map((p) => ({
        left: { video: p.left.video, index: p.left.index, startNs: p.left.startNs },
        right: { video: p.right.video, index: p.right.index, startNs: p.right.startNs },
        distance: p.distance
      })),
      sheet
    } satisfies Result
  }).pipe(
    Effect.provide(
      Layer.mergeAll(
        Layer.unwrapEffect(Effect.map(mesh, (m) => Resolver.layer(m))).pipe(
          Layer.provideMerge(Layer.mergeAll(FeatureStore.layer(), EntitySource.layerJasper, Executor.layerLocal()))
        ),
        Annotations.layerWithRegistry({ indexDirectory: path.join(options.data, "indexes") })
      ).pipe(
        Layer.provideMerge(
          Jasper.layer({
            roots: [path.join(options.data, "media")],
            derivatives: path.join(options.data, "derivatives")
          })
        ),
        Layer.provideMerge(options.storage)
      )
    ),
    Effect.scoped
  )
