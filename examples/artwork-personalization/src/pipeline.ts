/**
 * The artwork-personalization pipeline, composed from the suite's public APIs on one storage layer:
 *
 * 1. data: a world generated from the seed (titles, artworks, trailers, subtitles, members, exploration log);
 * 2. Jasper registers every asset; an Amber trigger on the catalog's change feed materializes the feature mesh
 *    (`mesh.ts`), memoized with lineage, so a second run computes nothing;
 * 3. @org/trainer trains a two-tower ranker (member profile, artwork embedding) -> play on the train log;
 * 4. Marken serves the scores (one annotation operation), similar artworks (kNN) and match-cut shot pairs;
 * 5. replay evaluation of the learned policy against random and count baselines, warm and cold-start titles.
 */
import { Effect, Layer, Schema, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import sharp from "sharp"
import { Executor, Resolver, Trigger } from "@org/amber-compute"
import { Catalog, Video } from "@org/jasper"
import type { Media } from "@org/jasper"
import { Annotations, AnnotationType, Registry } from "@org/marken"
import { Database } from "@org/storage"
import { Dataset, Devices, Model, Optimizer, Trainer } from "@org/trainer"
import * as M from "./mesh.js"
import { readValues } from "./mesh.js"
import { rng } from "./random.js"
import { meshLayer } from "./workers.js"
import { type Estimate, kmeans, type Policy, replay } from "./replay.js"
import { generate, type Impression } from "./world.js"

export interface Options {
  /** The data folder: media, derivatives, indexes, report. */
  readonly data: string
  readonly storage: Layer.Layer<Database.Database, unknown>
  readonly titles?: number
  readonly members?: number
  readonly impressionsPerMember?: number
  readonly epochs?: number
  readonly seed?: number
  readonly devices?: { readonly count: number; readonly kind: "auto" | "webgpu" | "cpu" }
  readonly clusters?: number
  /** Where the mesh's tasks run (default `Executor.layerLocal`: in this process); `--workers` passes the distributed one. */
  readonly executor?: Layer.Layer<Executor.Executor, unknown>
  readonly log?: (line: string) => void
}

export const ArtworkScore = AnnotationType.make({
  name: "artwork-score",
  version: "1.0",
  payload: Schema.Struct({ cluster: Schema.Int, title: Schema.String, score: Schema.Number, rank: Schema.Int })
})

export const ArtworkLook = AnnotationType.make({
  name: "artwork-look",
  version: "1.0",
  payload: Schema.Struct({ title: Schema.String, genre: Schema.String }),
  vectors: { look: { dimension: M.EMBEDDING, metric: "cosine" } }
})

export const ShotKeyframe = AnnotationType.make({
  name: "shot-keyframe",
  version: "1.0",
  payload: Schema.Struct({ video: Schema.String, title: Schema.String, index: Schema.Int }),
  vectors: { keyframe: { dimension: M.EMBEDDING, metric: "cosine" } }
})

export const POLICIES = ["learned", "random", "most-played", "cluster-best"] as const
export type PolicyName = (typeof POLICIES)[number]

export interface FeatureCounts {
  readonly entities: number
  readonly computed: number
  readonly reused: number
  readonly failed: number
}

export interface Summary {
  readonly storage: string
  readonly seed: number
  readonly devices: string
  readonly data: string
  readonly titles: ReadonlyArray<{
    id: string
    name: string
    genre: string
    cold: boolean
    artworks: ReadonlyArray<string>
  }>
  readonly artworkFiles: Readonly<Record<string, string>>
  readonly catalog: {
    readonly registered: number
    readonly failed: number
    readonly changes: number
    readonly processed: number
  }
  /** Per feature label: what this run computed and what it found stored. */
  readonly features: Readonly<Record<string, FeatureCounts>>
  readonly log: {
    readonly members: number
    readonly train: number
    readonly heldOut: number
    readonly cold: number
    readonly trainPlayRate: number
  }
  readonly training: {
    readonly rows: number
    readonly epochs: ReadonlyArray<{ epoch: number; loss: number; samplesPerSecond: number }>
    readonly steps: number
    readonly ms: number
  }
  readonly replay: {
    readonly warm: Readonly<Record<PolicyName, Estimate>>
    readonly cold: Readonly<Record<PolicyName, Estimate>>
    /** The hidden play model's best artwork per impression: a ceiling no policy can pass (in expectation). */
    readonly oracle: { readonly warm: number; readonly cold: number }
    readonly findings: ReadonlyArray<string>
  }
  readonly serving: {
    readonly operation: string
    readonly scores: number
    readonly clusters: number
    readonly picks: ReadonlyArray<{ cluster: number; title: string; artwork: string; score: number; members: number }>
    readonly best: ReadonlyArray<{ member: number; cluster: number; title: string; artwork: string }>
    readonly similar: ReadonlyArray<{
      readonly query: string
      readonly genre: string
      readonly any: ReadonlyArray<{ artwork: string; distance: number }>
      readonly sameGenre: ReadonlyArray<{ artwork: string; distance: number }>
    }>
    /** Shot pairs of identical footage across trailers (left out of the match cuts). */
    readonly duplicates: number
    readonly matchCuts: ReadonlyArray<{
      readonly left: { video: string; index: number; startNs: number; image: string }
      readonly right: { video: string; index: number; startNs: number; image: string }
      readonly distance: number
    }>
  }
  readonly timings: Readonly<Record<string, number>>
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x))

export const run = (options: Options) => {
  const log = options.log ?? ((line: string) => console.log(line))
  const seed = options.seed ?? 7
  const data = options.data
  const mediaDir = path.join(data, "media")
  const timings: Record<string, number> = {}
  const stage = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) =>
    Effect.suspend(() => {
      const t0 = Date.now()
      return Effect.tap(effect, () => Effect.sync(() => (timings[name] = Date.now() - t0)))
    })

  const program = Effect.gen(function* () {
    // 1. data
    log(
      `1/6 data: ${options.titles ?? 60} titles, ${options.members ?? 2000} members (seed ${seed}); media cached in ${mediaDir}`
    )
    const world = yield* stage(
      "data",
      generate({
        seed,
        titles: options.titles ?? 60,
        members: options.members ?? 2000,
        mediaDir,
        ...(options.impressionsPerMember ? { impressionsPerMember: options.impressionsPerMember } : {})
      })
    )

    // 2. catalog and features
    const catalog = yield* Catalog.Catalog
    const database = yield* Database.Database
    const ingest = Effect.gen(function* () {
      const registrations: Array<Media.Registration> = []
      for (const [t, title] of world.titles.entries()) {
        yield* catalog.putEntity({ id: title.id, kind: "title", title: title.name, attributes: { genre: title.genre } })
        for (const a of world.artworks[t]!) {
          yield* catalog.putEntity({ id: a.id, kind: "artwork", parentId: title.id })
          registrations.push({ entityId: a.id, role: "image", uri: a.file })
        }
        const v = world.videos[t]!
        yield* catalog.putEntity({ id: v.id, kind: "video", parentId: title.id })
        registrations.push({ entityId: v.id, role: "trailer", uri: v.file })
        registrations.push({ entityId: v.id, role: "subtitles", uri: v.subtitles })
      }
      const before = yield* catalog.head
      const results = yield* catalog.registerAll(registrations, { concurrency: 4 })
      const failed = results.filter((r) => r._tag === "Left")
      for (const f of failed.slice(0, 3)) log(`    could not register: ${(f.left as { message?: string }).message}`)
      const head = yield* catalog.head
      return { registered: results.length - failed.length, failed: failed.length, changes: head - before }
    })
    const ingested = yield* stage("ingest", ingest)
    log(`2/6 catalog: ${ingested.registered} assets registered, ${ingested.changes} new changes in the feed`)

    const features = Effect.gen(function* () {
      const trigger = yield* Trigger.make({ name: "artwork-demo", features: [...M.TARGETS], batchSize: 200 })
      const steps = yield* trigger.catchUp
      // every target over every entity: finds them stored (and computes anything the feed did not cover)
      const check = yield* Trigger.backfill([...M.TARGETS])
      const computed = new Map<string, number>()
      const failed = new Map<string, number>()
      for (const r of [...steps.flatMap((s) => s.runs), ...check])
        for (const [label, c] of Object.entries(r.features)) {
          computed.set(label, (computed.get(label) ?? 0) + c.computed)
          failed.set(label, (failed.get(label) ?? 0) + c.failed)
        }
      const entities = { artwork: world.artworks.flat().length, title: world.titles.length, video: world.videos.length }
      const counts: Record<string, FeatureCounts> = {}
      for (const spec of M.FEATURES) {
        const label = `${spec.name}@${spec.version}`
        const n = entities[spec.entity as keyof typeof entities]
        const c = computed.get(label) ?? 0
        const f = Math.min(
          n,
          check.reduce((s, r) => s + (r.features[label]?.failed ?? 0), 0)
        )
        counts[label] = { entities: n, computed: c, reused: Math.max(0, n - c - f), failed: f }
      }
      return { counts, processed: steps.reduce((s, x) => s + x.changes, 0) }
    })
    const materialized = yield* stage("features", features)
    for (const [label, c] of Object.entries(materialized.counts))
      log(
        `    ${label.padEnd(22)} ${String(c.computed).padStart(4)} computed, ${String(c.reused).padStart(4)} reused${c.failed ? `, ${c.failed} failed` : ""}`
      )

    const artworkIds = world.artworks.flat().map((a) => a.id)
    const embeddings = yield* readValues(M.ArtworkEmbedding, artworkIds)
    const keyframes = yield* readValues(
      M.VideoKeyframes,
      world.videos.map((v) => v.id)
    )

    // 3. training: member profile (from the train log) x artwork embedding -> play
    const D = M.EMBEDDING
    const mean = new Float64Array(D)
    const sd = new Float64Array(D)
    for (const e of embeddings.values()) for (let d = 0; d < D; d++) mean[d]! += e[d]! / embeddings.size
    for (const e of embeddings.values()) for (let d = 0; d < D; d++) sd[d]! += (e[d]! - mean[d]!) ** 2 / embeddings.size
    const z = new Map(
      [...embeddings].map(([id, e]) => [id, Float32Array.from(e, (x, d) => (x - mean[d]!) / (Math.sqrt(sd[d]!) || 1))])
    )
    const zOf = (i: Impression, k = i.artwork) => z.get(world.artworks[i.title]![k]!.id)!
    const playRate = world.train.filter((i) => i.played).length / Math.max(1, world.train.length)
    // a member's profile: the mean artwork embedding of what they saw, weighted by played minus the base rate
    const sums = Array.from({ length: world.members }, () => new Float64Array(D))
    const seen = new Int32Array(world.members)
    for (const i of world.train) {
      const e = zOf(i)
      const w = (i.played ? 1 : 0) - playRate
      for (let d = 0; d < D; d++) sums[i.member]![d]! += w * e[d]!
      seen[i.member]!++
    }
    const MEMBER = D + 1
    const profileInto = (out: Float32Array, offset: number, m: number, leaveOut?: Impression) => {
      const n = seen[m]! - (leaveOut ? 1 : 0)
      if (n > 0) {
        const e = leaveOut ? zOf(leaveOut) : undefined
        const w = leaveOut ? (leaveOut.played ? 1 : 0) - playRate : 0
        for (let d = 0; d < D; d++) out[offset + d] = (sums[m]![d]! - (e ? w * e[d]! : 0)) / n
      }
      out[offset + D] = 1
    }
    const profiles = Array.from({ length: world.members }, (_, m) => {
      const p = new Float32Array(MEMBER)
      profileInto(p, 0, m)
      return p
    })

    const { devices, discovery } = yield* Devices.make(options.devices ?? { count: 2, kind: "auto" })
    const rows = world.train.length
    const epochsWanted = options.epochs ?? 8
    log(
      `3/6 training: ${rows} impressions (${(playRate * 100).toFixed(1)}% played) on ${discovery.message}, ${epochsWanted} epochs`
    )
    const trainMember = new Float32Array(rows * MEMBER)
    const trainItem = new Float32Array(rows * D)
    const target = new Float32Array(rows)
    world.train.forEach((i, r) => {
      profileInto(trainMember, r * MEMBER, i.member, i) // leave the row's own play out of its profile
      trainItem.set(zOf(i), r * D)
      target[r] = i.played ? 1 : 0
    })
    const model = yield* Model.twoTower({
      member: [Model.dense(MEMBER, 16), Model.activation("relu"), Model.dense(16, 8)],
      item: [Model.dense(D, 16), Model.activation("relu"), Model.dense(16, 8)]
    })
    const dataset = yield* Dataset.make({ size: rows, inputs: { member: trainMember, item: trainItem }, target })
    const trainStarted = Date.now()
    const epochs: Array<{ epoch: number; loss: number; samplesPerSecond: number }> = []
    let parameters: Trainer.Result["parameters"] | undefined
    let steps = 0
    yield* stage(
      "training",
      Trainer.stream({
        model,
        data: dataset,
        devices,
        batchSize: 512,
        epochs: epochsWanted,
        seed,
        optimizer: Optimizer.adam({ learningRate: 0.01 })
      }).pipe(
        Stream.runForEach((event) =>
          Effect.sync(() => {
            if (event._tag === "Epoch") {
              epochs.push({ epoch: event.epoch + 1, loss: event.loss, samplesPerSecond: event.samplesPerSecond })
              log(
                `    epoch ${event.epoch + 1}/${epochsWanted}: loss ${event.loss.toFixed(4)}, ${Math.round(event.samplesPerSecond)} rows/s`
              )
            } else if (event._tag === "Completed") {
              parameters = event.parameters
              steps = event.step
            }
          })
        )
      )
    )
    const trainMs = Date.now() - trainStarted

    // scores of every candidate for every (member, title) the evaluation needs
    const scoreRows = (pairs: ReadonlyArray<readonly [Float32Array, Float32Array]>) =>
      Effect.gen(function* () {
        const member = new Float32Array(pairs.length * MEMBER)
        const item = new Float32Array(pairs.length * D)
        pairs.forEach(([p, e], r) => {
          member.set(p, r * MEMBER)
          item.set(e, r * D)
        })
        return yield* Trainer.predict(model, devices[0]!, parameters!, { size: pairs.length, inputs: { member, item } })
      })
    const evalLog = [...world.heldOut, ...world.cold]
    const pairKeys = [...new Set(evalLog.map((i) => `${i.member}:${i.title}`))]
    const pairRows: Array<readonly [Float32Array, Float32Array]> = []
    const pairOffset = new Map<string, number>()
    for (const key of pairKeys) {
      const [m, t] = key.split(":").map(Number) as [number, number]
      pairOffset.set(key, pairRows.length)
      for (const a of world.artworks[t]!) pairRows.push([profiles[m]!, z.get(a.id)!])
    }
    const scores = yield* scoreRows(pairRows)

    // member clusters over the profiles: the baseline's groups and the serving granularity
    const k = options.clusters ?? 8
    const { assignment, centroids } = kmeans(
      profiles.map((p) => p.subarray(0, D)),
      k,
      seed
    )

    // 4. policies and replay
    const argmax = (values: ArrayLike<number>) => {
      let best = 0
      for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i
      return best
    }
    const randomChoice = (i: Impression, salt: number) => {
      const r = rng(seed * 1_000_003 + salt + i.member * 7919 + i.title * 104_729 + Math.floor(i.time * 1e9))
      return Math.floor(r() * world.artworks[i.title]!.length)
    }
    const shows = new Map<string, Array<[number, number]>>() // key -> per artwork [shown, played]
    const count = (key: string, t: number, a: number, played: boolean) => {
      let c = shows.get(key)
      if (!c) shows.set(key, (c = world.artworks[t]!.map(() => [0, 0] as [number, number])))
      c[a]![0]++
      if (played) c[a]![1]++
    }
    for (const i of world.train) {
      count(`t${i.title}`, i.title, i.artwork, i.played)
      count(`c${assignment[i.member]}:${i.title}`, i.title, i.artwork, i.played)
    }
    const fromCounts = (key: string, i: Impression, useRate: boolean) => {
      const c = shows.get(key)
      if (!c) return randomChoice(i, 3) // no data (cold start): a random artwork
      return argmax(c.map(([s, p]) => (useRate ? (p + 1) / (s + 2) : p)))
    }
    const policies: Record<PolicyName, Policy> = {
      learned: (i) => {
        const o = pairOffset.get(`${i.member}:${i.title}`)!
        return argmax(scores.subarray(o, o + world.artworks[i.title]!.length))
      },
      random: (i) => randomChoice(i, 1),
      "most-played": (i) => fromCounts(`t${i.title}`, i, false),
      "cluster-best": (i) => fromCounts(`c${assignment[i.member]}:${i.title}`, i, true)
    }
    const evaluate = (events: ReadonlyArray<Impression>) =>
      Object.fromEntries(POLICIES.map((p, n) => [p, replay(events, policies[p], seed + n)])) as Record<
        PolicyName,
        Estimate
      >
    log(
      `4/6 replay: ${world.heldOut.length} held-out impressions on warm titles, ${world.cold.length} on cold-start titles`
    )
    const replayWarm = yield* stage(
      "replay",
      Effect.sync(() => evaluate(world.heldOut))
    )
    const replayCold = evaluate(world.cold)
    const oracle = (events: ReadonlyArray<Impression>) =>
      events.reduce(
        (s, i) => s + Math.max(...world.artworks[i.title]!.map((_, a) => world.playProbability(i.member, i.title, a))),
        0
      ) / Math.max(1, events.length)
    const findings: Array<string> = []
    // a win is claimed only where the learned policy's lower bound clears the other's upper bound
    const interval = (e: Estimate) =>
      `${(e.takeRate * 100).toFixed(1)}% [${(e.low * 100).toFixed(1)}, ${(e.high * 100).toFixed(1)}]`
    const compare = (set: string, r: Record<PolicyName, Estimate>, other: PolicyName) => {
      const l = r.learned
      const o = r[other]
      const numbers = `learned ${interval(l)} vs ${other} ${interval(o)}`
      if (l.low > o.high) findings.push(`${set}: learned beats ${other}, its lower bound clears (${numbers})`)
      else if (l.takeRate > o.takeRate)
        findings.push(`${set}: learned is above ${other}, but the intervals overlap: not a clear win (${numbers})`)
      else findings.push(`${set}: learned does NOT beat ${other} (${numbers})`)
    }
    for (const other of ["random", "most-played", "cluster-best"] as const) {
      compare("warm titles", replayWarm, other)
      compare("cold-start titles", replayCold, other)
    }

    // 5. serving through Marken
    log(`5/6 serving: scores, artwork looks and shot keyframes written to Marken`)
    const annotations = yield* Annotations.Annotations
    const registry = yield* Registry.Registry
    let lapAt = Date.now()
    const lap = (name: string) => {
      timings[`serving.${name}`] = Date.now() - lapAt
      lapAt = Date.now()
    }
    const serving = yield* stage(
      "serving",
      Effect.gen(function* () {
        yield* registry.register(ArtworkScore)
        yield* registry.register(ArtworkLook)
        yield* registry.register(ShotKeyframe)
        // scores per (member cluster, artwork): the centroid's profile through the ranker, as one operation
        const clusterRows: Array<readonly [Float32Array, Float32Array]> = []
        const centroidProfiles = centroids.map((c) => {
          const p = new Float32Array(MEMBER)
          p.set(c)
          p[D] = 1
          return p
        })
        for (const p of centroidProfiles) for (const id of artworkIds) clusterRows.push([p, z.get(id)!])
        const clusterScores = yield* scoreRows(clusterRows)
        const op = yield* annotations.start({
          type: ArtworkScore.name,
          version: ArtworkScore.version,
          producer: { algorithm: "two-tower-ranker", version: "1", key: "artwork-ranker" }
        })
        const items: Array<Parameters<typeof annotations.upsert>[1][number]> = []
        centroidProfiles.forEach((_, c) => {
          for (const [t, title] of world.titles.entries()) {
            const list = world.artworks[t]!
            const s = list.map((a) => clusterScores[c * artworkIds.length + artworkIds.indexOf(a.id)]!)
            const order = s.map((_, i) => i).sort((a, b) => s[b]! - s[a]!)
            order.forEach((i, rank) =>
              items.push({
                entity: list[i]!.id,
                key: `${c}/${list[i]!.id}`,
                payload: { cluster: c, title: title.id, score: s[i]!, rank: rank + 1 },
                label: `cluster-${c}`,
                confidence: sigmoid(s[i]!)
              })
            )
          }
        })
        for (let i = 0; i < items.length; i += 1000) yield* annotations.upsert(op.id, items.slice(i, i + 1000))
        yield* annotations.finish(op.id)
        const sizes = new Array<number>(k).fill(0)
        for (const c of assignment) sizes[c]!++
        // "the best artwork for this cluster and title", answered by Marken
        const shownTitles = world.titles
          .filter((t) => !t.cold)
          .slice(0, 3)
          .concat(world.titles.filter((t) => t.cold).slice(0, 1))
        const picks: Array<Summary["serving"]["picks"][number]> = []
        for (const title of shownTitles) {
          const page = yield* annotations.query({
            type: ArtworkScore.name,
            where: [
              { field: "title", op: "eq", value: title.id },
              { field: "rank", op: "eq", value: 1 }
            ],
            limit: 100
          })
          for (const a of page.items) {
            const p = a.payload as { cluster: number; score: number }
            picks.push({
              cluster: p.cluster,
              title: title.id,
              artwork: a.entity,
              score: p.score,
              members: sizes[p.cluster]!
            })
          }
        }
        picks.sort((a, b) => a.title.localeCompare(b.title) || a.cluster - b.cluster)
        const best: Array<Summary["serving"]["best"][number]> = []
        for (const member of [0, 1, 2]) {
          const title = shownTitles[member % shownTitles.length]!
          const page = yield* annotations.query({
            type: ArtworkScore.name,
            where: [
              { field: "cluster", op: "eq", value: assignment[member]! },
              { field: "title", op: "eq", value: title.id },
              { field: "rank", op: "eq", value: 1 }
            ],
            limit: 1
          })
          best.push({ member, cluster: assignment[member]!, title: title.id, artwork: page.items[0]?.entity ?? "" })
        }

        // artwork looks: kNN over the embeddings, and filtered by genre
        const genreOf = new Map(world.titles.map((t) => [t.id, t.genre] as const))
        lap("scores")
        const lookOp = yield* annotations.start({
          type: ArtworkLook.name,
          version: ArtworkLook.version,
          producer: { algorithm: "artwork-embedding", version: "1", key: "artwork-look" }
        })
        const looks = world.artworks.flat().map((a) => ({
          entity: a.id,
          key: a.id,
          payload: { title: a.title, genre: genreOf.get(a.title)! },
          vectors: { look: z.get(a.id)! }
        }))
        for (let i = 0; i < looks.length; i += 1000) yield* annotations.upsert(lookOp.id, looks.slice(i, i + 1000))
        yield* annotations.finish(lookOp.id)
        const entityOf = (id: string) => Effect.map(annotations.get(id), (a) => a.entity)
        lap("looks")
        const similar: Array<Summary["serving"]["similar"][number]> = []
        for (const query of [world.artworks[0]![0]!, world.artworks[1]![0]!, world.artworks[2]![1]!]) {
          const genre = genreOf.get(query.title)!
          const search = (filter: boolean) =>
            Effect.flatMap(
              annotations.search({
                type: ArtworkLook.name,
                version: ArtworkLook.version,
                field: "look",
                vector: z.get(query.id)!,
                k: 5,
                ...(filter ? { filter: { where: [{ field: "genre", op: "eq" as const, value: genre }] } } : {})
              }),
              (hits) =>
                Effect.forEach(hits, (h) =>
                  Effect.map(entityOf(h.id), (artwork) => ({ artwork, distance: h.distance }))
                )
            )
          const drop = (l: ReadonlyArray<{ artwork: string; distance: number }>) =>
            l.filter((h) => h.artwork !== query.id).slice(0, 4)
          similar.push({
            query: query.id,
            genre,
            any: drop(yield* search(false)),
            sameGenre: drop(yield* search(true))
          })
        }

        // match cuts: the most similar keyframes of shots in different trailers
        lap("similar")
        const shotOp = yield* annotations.start({
          type: ShotKeyframe.name,
          version: ShotKeyframe.version,
          producer: { algorithm: "keyframes", version: "1", key: "shot-keyframes" }
        })
        const shotItems = world.videos.flatMap((v) =>
          keyframes.get(v.id)!.map((s, index) => ({
            entity: v.id,
            key: `${v.id}/${index}`,
            time: { startNs: s.startNs, endNs: s.endNs },
            payload: { video: v.id, title: v.title, index },
            vectors: { keyframe: s.embedding }
          }))
        )
        for (let i = 0; i < shotItems.length; i += 1000)
          yield* annotations.upsert(shotOp.id, shotItems.slice(i, i + 1000))
        yield* annotations.finish(shotOp.id)
        const videoIds = world.videos.map((v) => v.id)
        lap("shots")
        const found: Array<{ left: string; right: string; distance: number }> = []
        for (const [n, v] of videoIds.entries()) {
          const later = videoIds.slice(n + 1)
          if (later.length === 0) continue
          const pairs = yield* annotations.pairs({
            type: ShotKeyframe.name,
            version: ShotKeyframe.version,
            field: "keyframe",
            left: { where: [{ field: "video", op: "eq", value: v }] },
            right: { where: [{ field: "video", op: "in", values: later.slice(0, 1000) }] },
            k: 12
          })
          found.push(...pairs)
        }
        found.sort((a, b) => a.distance - b.distance)
        // identical footage in two trailers is a duplicate, not a match cut; each shot appears once
        const SAME = 1e-3
        const duplicates = found.filter((p) => p.distance < SAME).length
        const used = new Set<string>()
        const chosen = found.filter((p) => {
          if (p.distance < SAME || used.has(p.left) || used.has(p.right)) return false
          used.add(p.left).add(p.right)
          return true
        })
        const framesDir = path.join(data, "frames")
        fs.mkdirSync(framesDir, { recursive: true })
        const shotOf = (id: string) =>
          Effect.gen(function* () {
            const a = yield* annotations.get(id)
            const p = a.payload as { video: string; index: number }
            const v = world.videos.find((x) => x.id === p.video)!
            const startNs = a.time!.startNs
            const image = path.join(framesDir, `${p.video}-${p.index}.jpg`)
            if (!fs.existsSync(image)) {
              const mid = Math.floor((a.time!.startNs + a.time!.endNs) / 2)
              const frames: Array<Video.Frame> = []
              yield* Video.frames(v.file, { at: [mid], width: 96 }).pipe(
                Stream.runForEach((f) => Effect.sync(() => frames.push(f)))
              )
              const f = frames[0]!
              yield* Effect.promise(() =>
                sharp(Buffer.from(f.data), { raw: { width: f.width, height: f.height, channels: 3 } })
                  .jpeg()
                  .toFile(image)
              )
            }
            return { video: p.video, index: p.index, startNs, image }
          })
        lap("pairs")
        const matchCuts: Array<Summary["serving"]["matchCuts"][number]> = []
        for (const pair of chosen.slice(0, 6))
          matchCuts.push({ left: yield* shotOf(pair.left), right: yield* shotOf(pair.right), distance: pair.distance })
        lap("frames")
        yield* annotations.persist
        return { operation: op.id, scores: items.length, clusters: k, picks, best, similar, matchCuts, duplicates }
      })
    )

    const summary: Summary = {
      storage: database.label,
      seed,
      devices: discovery.message,
      data,
      titles: world.titles.map((t, i) => ({
        id: t.id,
        name: t.name,
        genre: t.genre,
        cold: t.cold,
        artworks: world.artworks[i]!.map((a) => a.id)
      })),
      artworkFiles: Object.fromEntries(world.artworks.flat().map((a) => [a.id, a.file])),
      catalog: { ...ingested, processed: materialized.processed },
      features: materialized.counts,
      log: {
        members: world.members,
        train: world.train.length,
        heldOut: world.heldOut.length,
        cold: world.cold.length,
        trainPlayRate: playRate
      },
      training: { rows, epochs, steps, ms: trainMs },
      replay: {
        warm: replayWarm,
        cold: replayCold,
        oracle: { warm: oracle(world.heldOut), cold: oracle(world.cold) },
        findings
      },
      serving,
      timings
    }
    return summary
  })

  const App = Layer.mergeAll(
    Layer.unwrapEffect(Effect.map(M.mesh, (mesh) => Resolver.layer(mesh))).pipe(
      Layer.provide(options.executor ?? Executor.layerLocal({ concurrency: 2 }))
    ),
    Annotations.layerWithRegistry({ indexDirectory: path.join(data, "indexes") })
  ).pipe(Layer.provideMerge(meshLayer(data, options.storage)))
  return program.pipe(Effect.provide(App), Effect.scoped)
}
