/**
 * The example's feature mesh, on @org/amber-compute:
 *
 *   artwork: image asset -> standardized image (32x48 RGB) -> colour / layout / texture descriptors -> embedding
 *   title:   the embeddings of its artworks (children) -> set embedding
 *   video:   trailer asset -> shots -> one keyframe embedding per shot
 *
 * The resolver memoizes every value with its lineage; the trigger on the catalog's change feed decides what to
 * materialize. Nothing here resolves or triggers by hand.
 */
import { Effect, Option, Schema, Stream } from "effect"
import { FeatureSpec, FeatureStore, Fingerprint } from "@org/amber-store"
import { Algorithm, type ComputeError, Mesh, Resolver } from "@org/amber-compute"
import { Image, type Reader, Video } from "@org/jasper"
import { colorDescriptor, DIMENSION as COLOR } from "./features.js"

export const STANDARD = { width: 32, height: 48 } as const
export const LAYOUT = 12
export const TEXTURE = 8
/** The dimension of an artwork (and keyframe) embedding. */
export const EMBEDDING = COLOR + LAYOUT + TEXTURE

export const ArtworkStandard = FeatureSpec.embedding({
  name: "artwork.standard",
  version: 1,
  entity: "artwork",
  dimension: STANDARD.width * STANDARD.height * 3
})
export const ArtworkColor = FeatureSpec.embedding({
  name: "artwork.color",
  version: 1,
  entity: "artwork",
  dimension: COLOR
})
export const ArtworkLayout = FeatureSpec.embedding({
  name: "artwork.layout",
  version: 1,
  entity: "artwork",
  dimension: LAYOUT
})
export const ArtworkTexture = FeatureSpec.embedding({
  name: "artwork.texture",
  version: 1,
  entity: "artwork",
  dimension: TEXTURE
})
export const ArtworkEmbedding = FeatureSpec.embedding({
  name: "artwork.embedding",
  version: 1,
  entity: "artwork",
  dimension: EMBEDDING
})
export const TitleArtworks = FeatureSpec.embedding({
  name: "title.artwork_set",
  version: 1,
  entity: "title",
  dimension: EMBEDDING
})
const Range = Schema.Struct({ startNs: Schema.Number, endNs: Schema.Number })
export const VideoShots = FeatureSpec.make({
  name: "video.shots",
  version: 1,
  entity: "video",
  value: Schema.Array(Range)
})
export const VideoKeyframes = FeatureSpec.make({
  name: "video.keyframes",
  version: 1,
  entity: "video",
  value: Schema.Array(
    Schema.Struct({ startNs: Schema.Number, endNs: Schema.Number, embedding: Schema.Array(Schema.Number) })
  )
})

/** The features the trigger keeps materialized (everything else is upstream of them). */
export const TARGETS = [ArtworkEmbedding, TitleArtworks, VideoKeyframes] as const

/** Every feature of the mesh, producers first (the order of the summary and the report). */
export const FEATURES = [
  ArtworkStandard,
  ArtworkColor,
  ArtworkLayout,
  ArtworkTexture,
  ArtworkEmbedding,
  TitleArtworks,
  VideoShots,
  VideoKeyframes
] as const

const tensorOf = (data: Float32Array, width: number, height: number): Image.Tensor => ({
  data,
  dtype: "float32",
  layout: "hwc",
  shape: [height, width, 3],
  width,
  height,
  channels: 3
})

const luma = (t: Image.Tensor, x: number, y: number) => {
  const i = (y * t.width + x) * 3
  const d = t.data as Float32Array
  return 0.299 * d[i]! + 0.587 * d[i + 1]! + 0.114 * d[i + 2]!
}

/** Mean brightness and its spread over a 3 x 2 grid: where the light and the figures are. */
export const layoutDescriptor = (t: Image.Tensor): Float32Array => {
  const out = new Float32Array(LAYOUT)
  const cols = 2
  const rows = 3
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      let sum = 0
      let sq = 0
      let n = 0
      for (let y = Math.floor((r * t.height) / rows); y < Math.floor(((r + 1) * t.height) / rows); y++)
        for (let x = Math.floor((c * t.width) / cols); x < Math.floor(((c + 1) * t.width) / cols); x++) {
          const v = luma(t, x, y)
          sum += v
          sq += v * v
          n++
        }
      const m = sum / Math.max(1, n)
      out[(r * cols + c) * 2] = m
      out[(r * cols + c) * 2 + 1] = Math.sqrt(Math.max(0, sq / Math.max(1, n) - m * m))
    }
  return out
}

/** Gradient energy (horizontal, vertical) at two scales, edge densities at two thresholds, and contrast. */
export const textureDescriptor = (t: Image.Tensor): Float32Array => {
  const out = new Float32Array(TEXTURE)
  let gx = 0
  let gy = 0
  let gx2 = 0
  let gy2 = 0
  let weak = 0
  let strong = 0
  let sum = 0
  let sq = 0
  let n = 0
  for (let y = 0; y + 2 < t.height; y++)
    for (let x = 0; x + 2 < t.width; x++) {
      const v = luma(t, x, y)
      const dx = Math.abs(luma(t, x + 1, y) - v)
      const dy = Math.abs(luma(t, x, y + 1) - v)
      gx += dx
      gy += dy
      gx2 += Math.abs(luma(t, x + 2, y) - v)
      gy2 += Math.abs(luma(t, x, y + 2) - v)
      if (dx + dy > 0.05) weak++
      if (dx + dy > 0.2) strong++
      sum += v
      sq += v * v
      n++
    }
  const m = sum / n
  out.set([gx / n, gy / n, gx2 / n, gy2 / n, weak / n, strong / n, Math.sqrt(Math.max(0, sq / n - m * m)), m])
  return out
}

/** One embedding from the three descriptors (scaled so each block has a comparable spread). */
export const combine = (color: Float32Array, layout: Float32Array, texture: Float32Array): Float32Array => {
  const out = new Float32Array(EMBEDDING)
  out.set(color, 0)
  out.set(layout, COLOR)
  for (let i = 0; i < TEXTURE; i++) out[COLOR + LAYOUT + i] = texture[i]! * 3
  return out
}

/** The embedding of a decoded float32 image straight from pixels (keyframes use it). */
export const embed = (t: Image.Tensor): Float32Array =>
  combine(colorDescriptor(t), layoutDescriptor(t), textureDescriptor(t))

const decodeError = (what: string) => (cause: unknown) =>
  new Error(`${what}: ${(cause as { message?: string })?.message ?? String(cause)}`)

const algorithms = [
  Algorithm.make({
    feature: ArtworkStandard,
    inputs: { image: Algorithm.asset("image") },
    params: { ...STANDARD, fit: "cover" },
    concurrency: 4,
    compute: ({ inputs }) =>
      Image.decode(inputs.image.uri!, {
        resize: { width: STANDARD.width, height: STANDARD.height, fit: "cover" },
        dtype: "float32"
      }).pipe(Effect.map((t) => t.data as Float32Array))
  }),
  Algorithm.make({
    feature: ArtworkColor,
    inputs: { image: Algorithm.feature(ArtworkStandard) },
    compute: ({ inputs }) => Effect.succeed(colorDescriptor(tensorOf(inputs.image, STANDARD.width, STANDARD.height)))
  }),
  Algorithm.make({
    feature: ArtworkLayout,
    inputs: { image: Algorithm.feature(ArtworkStandard) },
    compute: ({ inputs }) => Effect.succeed(layoutDescriptor(tensorOf(inputs.image, STANDARD.width, STANDARD.height)))
  }),
  Algorithm.make({
    feature: ArtworkTexture,
    inputs: { image: Algorithm.feature(ArtworkStandard) },
    compute: ({ inputs }) => Effect.succeed(textureDescriptor(tensorOf(inputs.image, STANDARD.width, STANDARD.height)))
  }),
  Algorithm.make({
    feature: ArtworkEmbedding,
    inputs: {
      color: Algorithm.feature(ArtworkColor),
      layout: Algorithm.feature(ArtworkLayout),
      texture: Algorithm.feature(ArtworkTexture)
    },
    compute: ({ inputs }) => Effect.succeed(combine(inputs.color, inputs.layout, inputs.texture))
  }),
  Algorithm.make({
    feature: TitleArtworks,
    inputs: { artworks: Algorithm.children(ArtworkEmbedding) },
    compute: ({ entity, inputs }) =>
      inputs.artworks.length === 0
        ? Effect.fail(new Error(`title ${entity.id} has no artwork`))
        : Effect.sync(() => {
            const out = new Float32Array(EMBEDDING)
            for (const a of inputs.artworks)
              for (let i = 0; i < EMBEDDING; i++) out[i]! += a.value[i]! / inputs.artworks.length
            return out
          })
  }),
  Algorithm.make({
    feature: VideoShots,
    inputs: { video: Algorithm.asset("trailer") },
    params: { threshold: "default" },
    concurrency: 2,
    compute: ({ inputs }) =>
      Video.shots(inputs.video.uri!).pipe(
        Effect.map((ranges) => ranges.map((r) => ({ startNs: r.startNs, endNs: r.endNs }))),
        Effect.mapError(decodeError(`shots of ${inputs.video.uri}`))
      )
  }),
  Algorithm.make({
    feature: VideoKeyframes,
    inputs: { video: Algorithm.asset("trailer"), shots: Algorithm.feature(VideoShots) },
    params: { width: 48, height: 32, fps: 4, at: "nearest the middle" },
    concurrency: 2,
    compute: ({ inputs }) =>
      Effect.gen(function* () {
        // one decode of the whole (short) trailer at 4 frames a second; each shot takes the frame nearest its middle
        const frames: Array<Video.Frame> = []
        yield* Video.frames(inputs.video.uri!, { fps: 4, width: 48, height: 32 }).pipe(
          Stream.runForEach((f) => Effect.sync(() => frames.push(f)))
        )
        if (frames.length === 0) return yield* Effect.fail(new Error("no frames"))
        return inputs.shots.map((s) => {
          const middle = (s.startNs + s.endNs) / 2
          const f = frames.reduce((a, b) => (Math.abs(b.ptsNs - middle) < Math.abs(a.ptsNs - middle) ? b : a))
          const data = new Float32Array(f.width * f.height * 3)
          for (let j = 0; j < data.length; j++) data[j] = f.data[j]! / 255
          return { startNs: s.startNs, endNs: s.endNs, embedding: Array.from(embed(tensorOf(data, f.width, f.height))) }
        })
      }).pipe(Effect.mapError(decodeError(`keyframes of ${inputs.video.uri}`)))
  })
] as const

/** The validated mesh. */
export const mesh: Effect.Effect<Mesh.Mesh<Reader.Reader>, ComputeError.MeshError> = Mesh.make(algorithms)

/**
 * Reads the stored values of a feature for entities: the resolver's plan names each value's fingerprint, the store's
 * lineage gives its inputs, the store returns the values. (The resolver has no read of its own yet.)
 */
export const readValues = <A>(spec: FeatureSpec.FeatureSpec<A>, ids: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const resolver = yield* Resolver.Resolver
    const store = yield* FeatureStore.FeatureStore
    const plan = yield* resolver.plan(spec, ids)
    const wanted = new Map(
      plan.features.find((f) => f.name === spec.name)!.entries.map((e) => [e.entity, e.fingerprint] as const)
    )
    const lineage = yield* store.list({ feature: spec })
    const byKey = new Map(lineage.map((l) => [`${l.entity}\u0000${l.fingerprint}`, l] as const))
    const refs = yield* Effect.forEach(ids, (id) => {
      const l = byKey.get(`${id}\u0000${wanted.get(id)}`)
      if (l === undefined) return Effect.fail(new Error(`${spec.name} of ${id} is not stored`))
      return Effect.map(Fingerprint.make(l.inputs), (fingerprint) => ({ entity: id, fingerprint }))
    })
    const values = yield* store.getMany(spec, refs)
    return new Map(ids.map((id, i) => [id, Option.getOrThrow(values[i]!)] as const))
  })

/** The demo's mesh, as `mesh` yields it. */
export type DemoMesh = Effect.Effect.Success<typeof mesh>
