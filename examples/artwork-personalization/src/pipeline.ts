/**
 * The artwork-personalization pipeline, composed from the suite's layers:
 *
 * 1. Jasper: generated artworks and trailers are registered in the catalog (content
 *    hashed while read, probed); the change feed records every registration.
 * 2. Amber store: a colour embedding per artwork is computed once, keyed by the
 *    artwork's content hash; a second pass computes nothing.
 * 3. Trainer: a two-tower ranker (member segment x artwork features -> play) is
 *    trained data-parallel on 2 devices (WebGPU where an adapter exists, else CPU).
 * 4. Marken: scores are written as one annotation operation, shots of the trailers
 *    as temporal annotations; queries and vector search read them back.
 */
import { Effect, Layer, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { FeatureSpec, FeatureStore, Fingerprint } from "@org/amber-store"
import { Catalog, Image, Jasper, TestMedia, Video } from "@org/jasper"
import type { Media } from "@org/jasper"
import { Annotations, AnnotationType, Registry } from "@org/marken"
import { Database } from "@org/storage"
import { Dataset, Devices, Model, Optimizer, Progress, Trainer } from "@org/trainer"
import { colorDescriptor, DIMENSION } from "./features.js"
import { rng } from "./random.js"

export interface Options {
  /** Output folder (media, derivatives, indexes, report). */
  readonly out: string
  readonly storage: Layer.Layer<Database.Database, unknown>
  readonly titles?: number
  readonly artworksPerTitle?: number
  readonly members?: number
  readonly impressionsPerMember?: number
  readonly epochs?: number
  readonly trailers?: number
  readonly devices?: { readonly count: number; readonly kind: "auto" | "webgpu" | "cpu" }
  readonly seed?: number
  readonly log?: (line: string) => void
}

export const SEGMENTS = [
  { id: "night-owls", label: "Night owls: dark, moody artwork" },
  { id: "sunny-side", label: "Sunny side: bright artwork" },
  { id: "warm-tones", label: "Warm tones: reds and oranges" },
  { id: "cool-tones", label: "Cool tones: blues and cyans" }
] as const

const TITLE_NAMES = [
  "Night Harbor",
  "Paper Moons",
  "The Last Orchard",
  "Signal Lost",
  "Copper Coast",
  "Glass Garden",
  "Northbound",
  "Salt & Ember",
  "Quiet Engines",
  "Blue Hour",
  "Lantern Street",
  "Static Bloom"
]

/** What each segment really likes (hidden from the model, which only sees plays). */
const utility = (segment: number, f: Float32Array): number => {
  switch (segment) {
    case 0:
      return -f[6]! // dark
    case 1:
      return f[6]! // bright
    case 2:
      return f[8]! + f[9]! + f[15]! // red, orange, magenta hues
    default:
      return f[12]! + f[13]! + f[11]! // cyan, blue hues
  }
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x))

export const ArtworkColor = FeatureSpec.embedding({
  name: "artwork.color",
  version: 1,
  entity: "artwork",
  dimension: DIMENSION
})

export const ArtworkScore = AnnotationType.make({
  name: "artwork-score",
  version: "1.0",
  payload: Schema.Struct({ segment: Schema.String, title: Schema.String, score: Schema.Number, rank: Schema.Int }),
  vectors: { color: { dimension: DIMENSION, metric: "cosine" } }
})

export const Shot = AnnotationType.make({
  name: "shot",
  version: "1.0",
  payload: Schema.Struct({ index: Schema.Int, durationMs: Schema.Number })
})

export interface Summary {
  readonly storage: string
  readonly devices: string
  readonly titles: ReadonlyArray<{ readonly id: string; readonly name: string }>
  readonly artworks: ReadonlyArray<{
    readonly id: string
    readonly title: string
    readonly file: string
    readonly sha256: string
  }>
  readonly changes: number
  readonly features: { readonly first: FeatureStore.Counters; readonly second: FeatureStore.Counters }
  readonly training: {
    readonly samples: number
    readonly positives: number
    readonly epochs: ReadonlyArray<{ epoch: number; loss: number; samplesPerSecond: number }>
  }
  readonly picks: ReadonlyArray<{
    readonly segment: string
    readonly title: string
    readonly artwork: string
    readonly best: string
    readonly score: number
  }>
  readonly evaluation: {
    readonly accuracy: number
    readonly randomAccuracy: number
    readonly takeRate: number
    readonly randomTakeRate: number
  }
  readonly operation: { readonly id: string; readonly written: number; readonly queried: number }
  readonly similar: ReadonlyArray<{
    readonly query: string
    readonly hits: ReadonlyArray<{ id: string; distance: number }>
  }>
  readonly shots: ReadonlyArray<{ readonly title: string; readonly startMs: number; readonly endMs: number }>
  readonly shotsInFirstSecond: number
}

export const run = (options: Options) => {
  const log = options.log ?? ((line: string) => console.log(line))
  const titles = options.titles ?? 8
  const perTitle = options.artworksPerTitle ?? 4
  const members = options.members ?? 400
  const impressions = options.impressionsPerMember ?? 12
  const epochs = options.epochs ?? 12
  const trailers = options.trailers ?? 2
  const seed = options.seed ?? 7
  const mediaDir = path.join(options.out, "media")
  fs.mkdirSync(mediaDir, { recursive: true })

  const App = Layer.mergeAll(
    Jasper.layer({ roots: [mediaDir], derivatives: path.join(options.out, "derivatives") }),
    FeatureStore.layer(),
    Annotations.layerWithRegistry({ indexDirectory: path.join(options.out, "indexes") })
  ).pipe(Layer.provideMerge(options.storage))

  const program = Effect.gen(function* () {
    const catalog = yield* Catalog.Catalog
    const store = yield* FeatureStore.FeatureStore
    const annotations = yield* Annotations.Annotations
    const registry = yield* Registry.Registry
    const database = yield* Database.Database

    // 1. media: generate and register
    log(`1/5 catalog: generating ${titles} titles x ${perTitle} artworks and ${trailers} trailers`)
    const titleList = TITLE_NAMES.slice(0, titles).map((name, i) => ({ id: `title-${i + 1}`, name }))
    const registrations: Array<Media.Registration> = []
    const files = new Map<string, string>()
    for (const [i, t] of titleList.entries()) {
      yield* catalog.putEntity({ id: t.id, kind: "title", title: t.name })
      for (let j = 0; j < perTitle; j++) {
        const id = `${t.id}-art-${j + 1}`
        const file = path.join(mediaDir, `${id}.jpg`)
        yield* TestMedia.poster(file, { seed: seed * 101 + i * 17 + j * 5, width: 240, height: 360 })
        yield* catalog.putEntity({ id, kind: "artwork", parentId: t.id })
        registrations.push({ entityId: id, role: "poster", uri: file })
        files.set(id, file)
      }
      if (i < trailers) {
        const file = path.join(mediaDir, `${t.id}-trailer.mp4`)
        yield* TestMedia.video(file, {
          segments: ["color=c=0x203040", "testsrc", "color=c=0xd08040", "testsrc2"].slice(0, 3 + (i % 2)),
          segmentFrames: 24,
          rate: "24000/1001"
        })
        registrations.push({ entityId: t.id, role: "trailer", uri: file })
      }
    }
    const results = yield* catalog.registerAll(registrations, { concurrency: 2 })
    const assets = results.flatMap((r) => (r._tag === "Right" ? [r.right] : []))
    const failures = results.filter((r) => r._tag === "Left").length
    const changes = yield* catalog.head
    log(`    registered ${assets.length} assets (${failures} failed); change feed at position ${changes}`)
    const posters = assets.filter((a) => a.role === "poster")

    // 2. features, computed once per content hash
    const computeAll = Effect.forEach(
      posters,
      (asset) =>
        Effect.gen(function* () {
          const fingerprint = yield* Fingerprint.make({ assets: { image: asset.sha256 }, params: { size: [32, 48] } })
          const value = yield* store.getOrCompute(
            ArtworkColor,
            asset.entityId,
            fingerprint,
            Effect.map(
              Image.decode(asset, { resize: { width: 32, height: 48, fit: "cover" }, dtype: "float32" }),
              colorDescriptor
            ),
            { producer: "example/artwork-color@1" }
          )
          return [asset.entityId, value] as const
        }),
      { concurrency: 4 }
    )
    log(`2/5 features: ${ArtworkColor.name} v${ArtworkColor.version} for ${posters.length} artworks`)
    const before = yield* store.counters
    const features = new Map(yield* computeAll)
    const first = yield* store.counters
    yield* computeAll // the second pass reads what the first stored
    const second = yield* store.counters
    const diff = (a: FeatureStore.Counters, b: FeatureStore.Counters): FeatureStore.Counters => ({
      hits: a.hits - b.hits,
      misses: a.misses - b.misses,
      computations: a.computations - b.computations,
      waits: a.waits - b.waits,
      takeovers: a.takeovers - b.takeovers
    })
    const firstPass = diff(first, before)
    const secondPass = diff(second, first)
    log(
      `    first pass: ${firstPass.computations} computed, ${firstPass.hits} cached; second pass: ${secondPass.computations} computed, ${secondPass.hits} cached`
    )

    // 3. synthetic members and plays, then the two-tower ranker on 2 devices
    const artworkIds = posters.map((p) => p.entityId)
    const raw = artworkIds.map((id) => features.get(id)!)
    const mean = new Float32Array(DIMENSION)
    const std = new Float32Array(DIMENSION)
    for (const f of raw) for (let d = 0; d < DIMENSION; d++) mean[d]! += f[d]! / raw.length
    for (const f of raw) for (let d = 0; d < DIMENSION; d++) std[d]! += (f[d]! - mean[d]!) ** 2 / raw.length
    const normalized = new Map(
      artworkIds.map((id, k) => [id, raw[k]!.map((x, d) => (x - mean[d]!) / (Math.sqrt(std[d]!) || 1))])
    )
    // per-segment utilities, standardised so every segment has the same spread
    const util = SEGMENTS.map((_, s) => {
      const u = artworkIds.map((id) => utility(s, features.get(id)!))
      const m = u.reduce((a, b) => a + b, 0) / u.length
      const sd = Math.sqrt(u.reduce((a, b) => a + (b - m) ** 2, 0) / u.length) || 1
      return new Map(artworkIds.map((id, k) => [id, (u[k]! - m) / sd]))
    })
    // the chance that a member of segment `s` plays a title shown with artwork `id`
    const playProbability = (s: number, id: string) => sigmoid(2.5 * util[s]!.get(id)! - 0.5)
    const random = rng(seed)
    const n = members * impressions
    const member = new Float32Array(n)
    const item = new Float32Array(n * DIMENSION)
    const target = new Float32Array(n)
    let positives = 0
    for (let m = 0, row = 0; m < members; m++) {
      const segment = m % SEGMENTS.length
      for (let k = 0; k < impressions; k++, row++) {
        const id = artworkIds[Math.floor(random() * artworkIds.length)]!
        member[row] = segment
        item.set(normalized.get(id)!, row * DIMENSION)
        const play = random() < playProbability(segment, id) ? 1 : 0
        target[row] = play
        positives += play
      }
    }
    const { devices, discovery } = yield* Devices.make(options.devices ?? { count: 2, kind: "auto" })
    log(`3/5 training: ${n} impressions (${positives} plays) on ${discovery.message}`)
    const model = yield* Model.twoTower({
      member: [Model.embedding(SEGMENTS.length, 8), Model.dense(8, 8)],
      item: [Model.dense(DIMENSION, 16), Model.activation("relu"), Model.dense(16, 8)]
    })
    const data = yield* Dataset.make({ size: n, inputs: { member, item }, target })
    const fit = yield* Trainer.stream({
      model,
      data,
      devices,
      batchSize: 256,
      epochs,
      seed,
      optimizer: Optimizer.adam({ learningRate: 0.02 })
    }).pipe(Progress.render({ write: (line) => log(`    ${line}`) }), Trainer.collect)
    const epochRows = fit.epochs.map((e) => ({ epoch: e.epoch, loss: e.loss, samplesPerSecond: e.samplesPerSecond }))
    log(`    loss ${epochRows[0]?.loss.toFixed(4)} -> ${epochRows.at(-1)?.loss.toFixed(4)} in ${fit.steps} steps`)

    // score every (segment, artwork)
    const rows = SEGMENTS.length * artworkIds.length
    const qMember = new Float32Array(rows)
    const qItem = new Float32Array(rows * DIMENSION)
    SEGMENTS.forEach((_, s) =>
      artworkIds.forEach((id, k) => {
        qMember[s * artworkIds.length + k] = s
        qItem.set(normalized.get(id)!, (s * artworkIds.length + k) * DIMENSION)
      })
    )
    const scores = yield* Trainer.predict(model, devices[0]!, fit.parameters, {
      size: rows,
      inputs: { member: qMember, item: qItem }
    })
    const position = new Map(artworkIds.map((id, k) => [id, k]))
    const score = (s: number, id: string) => scores[s * artworkIds.length + position.get(id)!]!

    // 4. marken: the scores as one operation, the trailers' shots as temporal annotations
    log("4/5 annotations: writing scores as one operation, shots of the trailers")
    yield* registry.register(ArtworkScore)
    yield* registry.register(Shot)
    const op = yield* annotations.start({
      type: ArtworkScore.name,
      version: ArtworkScore.version,
      producer: { algorithm: "two-tower-ranker", version: "1", key: "artwork-ranker" }
    })
    const picks: Array<Summary["picks"][number]> = []
    const items: Array<Parameters<typeof annotations.upsert>[1][number]> = []
    for (const [s, segment] of SEGMENTS.entries()) {
      for (const t of titleList) {
        const candidates = artworkIds.filter((id) => id.startsWith(`${t.id}-`))
        const ranked = [...candidates].sort((a, b) => score(s, b) - score(s, a))
        const best = [...candidates].sort((a, b) => util[s]!.get(b)! - util[s]!.get(a)!)[0]!
        picks.push({ segment: segment.id, title: t.id, artwork: ranked[0]!, best, score: score(s, ranked[0]!) })
        ranked.forEach((id, rank) =>
          items.push({
            entity: id,
            key: `${segment.id}/${id}`,
            payload: { segment: segment.id, title: t.id, score: score(s, id), rank: rank + 1 },
            label: segment.id,
            confidence: sigmoid(score(s, id)),
            vectors: { color: features.get(id)! }
          })
        )
      }
    }
    const written = yield* annotations.upsert(op.id, items)
    yield* annotations.finish(op.id)
    const top = yield* annotations.query({
      type: ArtworkScore.name,
      where: [
        { field: "segment", op: "eq", value: "night-owls" },
        { field: "rank", op: "eq", value: 1 }
      ],
      sort: "confidence",
      order: "desc",
      limit: 100
    })
    const similar: Array<Summary["similar"][number]> = []
    for (const q of picks.filter((p) => p.segment === "night-owls").slice(0, 2)) {
      const hits = yield* annotations.search({
        type: ArtworkScore.name,
        version: ArtworkScore.version,
        field: "color",
        vector: features.get(q.artwork)!,
        k: 4,
        filter: { where: [{ field: "segment", op: "eq", value: "night-owls" }] }
      })
      const entities = yield* Effect.forEach(hits, (h) =>
        Effect.map(annotations.get(h.id), (a) => ({ id: a.entity, distance: h.distance }))
      )
      similar.push({ query: q.artwork, hits: entities })
    }
    const trailerAssets = assets.filter((a) => a.role === "trailer")
    const shotOp = yield* annotations.start({
      type: Shot.name,
      version: Shot.version,
      producer: { algorithm: "jasper-shots", version: "1", key: "shots" }
    })
    const shots: Array<Summary["shots"][number]> = []
    for (const trailer of trailerAssets) {
      const ranges = yield* Video.shots(trailer)
      const meta = trailer.metadata
      const frameRate = meta && meta._tag === "video" ? meta.frameRate : undefined
      yield* annotations.upsert(
        shotOp.id,
        ranges.map((r, index) => ({
          entity: trailer.entityId,
          key: `${trailer.entityId}/shot-${index}`,
          time: r,
          ...(frameRate ? { frameRate } : {}),
          payload: { index, durationMs: (r.endNs - r.startNs) / 1e6 }
        }))
      )
      for (const r of ranges) shots.push({ title: trailer.entityId, startMs: r.startNs / 1e6, endMs: r.endNs / 1e6 })
    }
    yield* annotations.finish(shotOp.id)
    const firstSecond = yield* annotations.query({
      type: Shot.name,
      time: { startNs: 0, endNs: 1_000_000_000 },
      limit: 1000
    })
    yield* annotations.persist

    // evaluation: did the ranker find each segment's favourite artwork?
    const correct = picks.filter((p) => p.artwork === p.best).length
    const takeRate =
      picks.reduce(
        (a, p) =>
          a +
          playProbability(
            SEGMENTS.findIndex((s) => s.id === p.segment),
            p.artwork
          ),
        0
      ) / picks.length
    const randomTakeRate =
      SEGMENTS.reduce(
        (acc, _, s) => acc + artworkIds.reduce((a, id) => a + playProbability(s, id), 0) / artworkIds.length,
        0
      ) / SEGMENTS.length
    log(
      `5/5 evaluation: favourite artwork found for ${correct}/${picks.length} (segment, title) pairs; expected take rate ${(takeRate * 100).toFixed(1)}% vs ${(randomTakeRate * 100).toFixed(1)}% for a random artwork`
    )

    const summary: Summary = {
      storage: database.label,
      devices: discovery.message,
      titles: titleList,
      artworks: posters.map((p) => ({
        id: p.entityId,
        title: p.entityId.replace(/-art-\d+$/, ""),
        file: files.get(p.entityId)!,
        sha256: p.sha256
      })),
      changes,
      features: { first: firstPass, second: secondPass },
      training: { samples: n, positives, epochs: epochRows },
      picks,
      evaluation: { accuracy: correct / picks.length, randomAccuracy: 1 / perTitle, takeRate, randomTakeRate },
      operation: { id: op.id, written: written.written.length, queried: top.items.length },
      similar,
      shots,
      shotsInFirstSecond: firstSecond.items.length
    }
    return summary
  })

  return program.pipe(Effect.provide(App), Effect.scoped)
}
