/**
 * Standardized derivatives: a named, versioned spec ("image 224x224 RGB", "video 2 fps
 * 256px") whose output is stored once per (content hash, spec, spec version) as a
 * file under a configured folder and indexed in the catalog, so every algorithm that
 * asks for the same derivative shares it and a second request reads instead of
 * decoding.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Option, Schedule, Schema, Stream } from "effect"
import type { ExpressionBuilder, Selectable } from "kysely"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Database, type StorageError as StorageErrors } from "@org/storage"
import * as Catalog from "./Catalog.js"
import * as Image from "./Image.js"
import {
  type AssetNotFoundError,
  type DecodeError,
  DerivativeError,
  InvalidInputError,
  type JasperConfigError,
  type PixelLimitError,
  type ReadError,
  type UnsupportedMediaError
} from "./JasperError.js"
import { decodeOptions } from "./internal/options.js"
import type * as Media from "./Media.js"
import * as Probe from "./Probe.js"
import * as Reader from "./Reader.js"
import type { Tables } from "./internal/migrations.js"
import type * as Time from "./Time.js"
import * as Video from "./Video.js"

type StorageError = StorageErrors.StorageError

/**
 * JSON metadata stored beside a derivative.
 *
 * @since 0.1.0
 * @category models
 */
export type Json = { readonly [key: string]: unknown }

/**
 * Errors a spec's `produce` may fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type ProduceError =
  | ReadError
  | DecodeError
  | PixelLimitError
  | UnsupportedMediaError
  | InvalidInputError
  | DerivativeError

/** The error of a derivative that failed to be produced or stored. */
const derivativeError =
  (spec: { readonly name: string; readonly version: number }, sha256: string) =>
  (cause: unknown): DerivativeError =>
    new DerivativeError({ spec: spec.name, specVersion: spec.version, sha256, message: String(cause), cause })

/**
 * A derivative spec. `produce` writes the derivative of a local file to `output`
 * and returns its metadata; `read` turns the stored file back into a value.
 * Bump `version` whenever the output would change.
 *
 * @since 0.1.0
 * @category models
 */
export interface Spec<A> {
  readonly name: string
  readonly version: number
  readonly mediaType: Media.MediaType
  readonly extension: string
  readonly produce: (input: {
    readonly file: string
    readonly asset: Media.Asset
    readonly output: string
  }) => Effect.Effect<Json, ProduceError>
  readonly read: (file: string, metadata: Json) => Effect.Effect<A, DerivativeError>
}

/**
 * Builds a spec, checking its name (lowercase letters, digits, `.`, `_`, `-`) and version.
 *
 * @since 0.1.0
 * @category constructors
 */
export const spec = <A>(definition: Spec<A>): Spec<A> => {
  if (
    !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(definition.name) ||
    !Number.isSafeInteger(definition.version) ||
    definition.version < 1
  ) {
    throw new InvalidInputError({
      subject: `derivative spec ${definition.name}`,
      message: `derivative spec "${definition.name}" v${definition.version}: the name must be lowercase [a-z0-9._-] and the version a positive integer`
    })
  }
  return definition
}

const readFile = (spec: { name: string; version: number }, file: string) =>
  Effect.tryPromise({
    try: () => fs.promises.readFile(file),
    catch: (cause) =>
      new DerivativeError({
        spec: spec.name,
        specVersion: spec.version,
        sha256: path.basename(file).split(".")[0]!,
        message: `cannot read ${file}: ${String(cause)}`,
        cause
      })
  })

/**
 * An image as a Uint8 HWC tensor of a fixed size (e.g. 224x224 RGB). Read back as
 * `Image.Tensor`; convert with your model's normalization.
 *
 * @since 0.1.0
 * @category specs
 */
export const imageTensor = (options: {
  readonly width: number
  readonly height: number
  readonly channels?: 3 | 4
  readonly fit?: Image.Fit
  readonly name?: string
  readonly version?: number
}): Spec<Image.Tensor> => {
  const channels = options.channels ?? 3
  const id = {
    name: options.name ?? `image-${options.width}x${options.height}-${channels === 3 ? "rgb" : "rgba"}`,
    version: options.version ?? 1
  }
  return spec({
    ...id,
    mediaType: "image",
    extension: "raw",
    produce: ({ asset, file, output }) =>
      Effect.gen(function* () {
        const t = yield* Image.decodeInput(
          file,
          {
            resize: { width: options.width, height: options.height, ...(options.fit ? { fit: options.fit } : {}) },
            channels
          },
          { uri: asset.uri, assetId: asset.id }
        )
        yield* Effect.tryPromise({
          try: () => fs.promises.writeFile(output, t.data),
          catch: derivativeError(id, asset.sha256)
        })
        return { width: t.width, height: t.height, channels: t.channels }
      }),
    read: (file, m) =>
      Effect.map(readFile(id, file), (bytes) => ({
        data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        dtype: "uint8" as const,
        layout: "hwc" as const,
        shape: [Number(m.height), Number(m.width), Number(m.channels)] as const,
        width: Number(m.width),
        height: Number(m.height),
        channels: Number(m.channels) as 3 | 4
      }))
  })
}

/**
 * Frames of a video sampled at `fps`, scaled to `width` (aspect kept).
 *
 * @since 0.1.0
 * @category models
 */
export interface Frames {
  readonly width: number
  readonly height: number
  readonly frames: ReadonlyArray<{ readonly ptsNs: number; readonly sourceFrame: number; readonly data: Uint8Array }>
}

/**
 * A video as RGB frames at a rate and width (e.g. "video 2 fps 256px"), stored as
 * concatenated frames written while decoding (the video is never held in memory).
 *
 * @since 0.1.0
 * @category specs
 */
export const videoFrames = (options: {
  readonly fps: number | Time.Rational
  readonly width: number
  readonly name?: string
  readonly version?: number
}): Spec<Frames> => {
  const fpsLabel = typeof options.fps === "number" ? String(options.fps) : `${options.fps.num}-${options.fps.den}`
  const id = { name: options.name ?? `video-${fpsLabel}fps-${options.width}px`, version: options.version ?? 1 }
  return spec({
    ...id,
    mediaType: "video",
    extension: "rgb",
    produce: ({ asset, file, output }) =>
      Effect.gen(function* () {
        const label = { uri: asset.uri, assetId: asset.id }
        const meta = asset.metadata._tag === "video" ? asset.metadata : yield* Probe.video(file, label)
        const fail = derivativeError(id, asset.sha256)
        const handle = yield* Effect.acquireRelease(
          Effect.tryPromise({ try: () => fs.promises.open(output, "w"), catch: fail }),
          (h) => Effect.promise(() => h.close().catch(() => undefined))
        )
        const pts: Array<number> = []
        const sourceFrames: Array<number> = []
        let size = { width: 0, height: 0 }
        yield* Video.framesFromFile(file, meta, { fps: options.fps, width: options.width }, label).pipe(
          Stream.runForEach((f) => {
            pts.push(f.ptsNs)
            sourceFrames.push(f.sourceFrame)
            size = { width: f.width, height: f.height }
            return Effect.tryPromise({ try: () => handle.write(f.data), catch: fail })
          })
        )
        return { ...size, ptsNs: pts, sourceFrames }
      }).pipe(Effect.scoped),
    read: (file, m) =>
      Effect.map(readFile(id, file), (bytes) => {
        const width = Number(m.width)
        const height = Number(m.height)
        const frameBytes = width * height * 3
        const pts = (m.ptsNs as ReadonlyArray<number>) ?? []
        const sources = (m.sourceFrames as ReadonlyArray<number>) ?? []
        return {
          width,
          height,
          frames: pts.map((ptsNs, i) => ({
            ptsNs,
            sourceFrame: sources[i] ?? i,
            data: new Uint8Array(bytes.buffer, bytes.byteOffset + i * frameBytes, frameBytes)
          }))
        }
      })
  })
}

/**
 * A stored derivative as indexed in the catalog.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  readonly sha256: string
  readonly spec: string
  readonly specVersion: number
  readonly path: string
  readonly byteSize: number
  readonly metadata: Json
  readonly createdAtMs: number
}

/**
 * Errors of the derivatives service.
 *
 * @since 0.1.0
 * @category models
 */
export type DerivativesError = ProduceError | AssetNotFoundError | StorageError

/**
 * The shape of the `Derivatives` service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly dir: string
  /** The derivative of an asset (or asset id): read when stored, produced and stored once otherwise. */
  readonly get: <A>(asset: Media.Asset | string, spec: Spec<A>) => Effect.Effect<A, DerivativesError>
  /** Makes sure the derivative is stored; `produced` tells whether this call produced it. */
  readonly ensure: <A>(
    asset: Media.Asset | string,
    spec: Spec<A>
  ) => Effect.Effect<Entry & { readonly produced: boolean }, DerivativesError>
  /** The index entry for a content hash and spec, if stored. */
  readonly lookup: (
    sha256: string,
    spec: { readonly name: string; readonly version: number }
  ) => Effect.Effect<Option.Option<Entry>, StorageError>
  /** Every derivative stored for a content hash. */
  readonly list: (sha256: string) => Effect.Effect<ReadonlyArray<Entry>, StorageError>
}

/**
 * The derivatives service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Derivatives extends Context.Tag("@org/jasper/Derivatives")<Derivatives, Service>() {}

const CLAIMS = "jasper_derivative_claims" as const
/** How long a claim holds without renewal (the producer renews it every third of this). */
const CLAIM_LEASE_MS = 30_000
/** How often a waiting process looks again. */
const CLAIM_POLL_MS = 50

const toEntry = (row: Selectable<Tables["jasper_derivatives"]>, readJson: (value: unknown) => unknown): Entry => ({
  sha256: row.sha256,
  spec: row.spec,
  specVersion: Number(row.spec_version),
  path: row.path,
  byteSize: Number(row.byte_size),
  metadata: readJson(row.metadata) as Json,
  createdAtMs: Number(row.created_at)
})

/**
 * Builds the service storing files under `dir` (created when missing).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (input: {
  readonly dir: string
}): Effect.Effect<Service, StorageError | JasperConfigError, Database.Database | Catalog.Catalog | Reader.Reader> =>
  Effect.gen(function* () {
    const options = yield* decodeOptions("Derivatives", Schema.Struct({ dir: Schema.NonEmptyTrimmedString }), input)
    const db = yield* Database.Database
    const catalog = yield* Catalog.Catalog
    const reader = yield* Reader.Reader
    const dir = path.resolve(options.dir)
    const use = Database.typed<Tables>(db)
    yield* Effect.promise(() => fs.promises.mkdir(dir, { recursive: true }))

    const lookup: Service["lookup"] = (sha256, spec) =>
      Effect.map(
        use("derivatives.lookup", (k) =>
          k
            .selectFrom("jasper_derivatives")
            .selectAll()
            .where("sha256", "=", sha256)
            .where("spec", "=", spec.name)
            .where("spec_version", "=", spec.version)
            .executeTakeFirst()
        ),
        (row) => (row ? Option.some(toEntry(row, db.capabilities.readJson)) : Option.none())
      )

    const exists = (p: string) =>
      Effect.promise(() =>
        fs.promises.access(p).then(
          () => true,
          () => false
        )
      )

    // requests for the same derivative in this process wait for one another (striped locks),
    // so the second one reads what the first stored
    const stripes = yield* Effect.forEach(Array.from({ length: 64 }), () => Effect.makeSemaphore(1))
    const stripeOf = (key: string) => stripes[crypto.createHash("sha1").update(key).digest()[0]! % stripes.length]!

    // across processes: a claim row in the database (with a lease the producer renews);
    // the others poll until the derivative is indexed or the lease runs out
    const owner = `${os.hostname()}:${process.pid}:${crypto.randomUUID()}`
    type Key = { readonly sha256: string; readonly spec: string; readonly spec_version: number }
    const claimOf = (key: Key) => (eb: ExpressionBuilder<Tables, typeof CLAIMS>) =>
      eb.and([eb("sha256", "=", key.sha256), eb("spec", "=", key.spec), eb("spec_version", "=", key.spec_version)])
    const claim = (key: Key) =>
      db.transaction(
        Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          const inserted = yield* use("derivatives.claim", (k) =>
            k
              .insertInto(CLAIMS)
              .values({ ...key, owner, expires_at: now + CLAIM_LEASE_MS })
              .onConflict((oc) => oc.doNothing())
              .returning("owner")
              .execute()
          )
          if (inserted.length > 0) return true
          const held = yield* use("derivatives.claim.held", (k) =>
            k.selectFrom(CLAIMS).select(["owner", "expires_at"]).where(claimOf(key)).executeTakeFirst()
          )
          if (held === undefined) return false // released just now: look again
          if (held.owner === owner) return true
          if (Number(held.expires_at) > now) return false
          // the holder's lease ran out (it died): take over, unless another waiter just did
          const taken = yield* use("derivatives.claim.takeover", (k) =>
            k
              .updateTable(CLAIMS)
              .set({ owner, expires_at: now + CLAIM_LEASE_MS })
              .where(claimOf(key))
              .where("owner", "=", held.owner)
              .where("expires_at", "=", held.expires_at)
              .executeTakeFirst()
          )
          return Number(taken.numUpdatedRows) === 1
        })
      )
    const renew = (key: Key) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        use("derivatives.claim.renew", (k) =>
          k
            .updateTable(CLAIMS)
            .set({ expires_at: now + CLAIM_LEASE_MS })
            .where(claimOf(key))
            .where("owner", "=", owner)
            .execute()
        )
      )
    const release = (key: Key) =>
      use("derivatives.claim.release", (k) =>
        k.deleteFrom(CLAIMS).where(claimOf(key)).where("owner", "=", owner).execute()
      )

    const ensureClaimed = <A>(asset: Media.Asset, spec: Spec<A>) => {
      const key: Key = { sha256: asset.sha256, spec: spec.name, spec_version: spec.version }
      const attempt: Effect.Effect<Entry & { readonly produced: boolean }, DerivativesError> = Effect.gen(function* () {
        const stored = yield* lookup(asset.sha256, spec)
        if (Option.isSome(stored) && (yield* exists(stored.value.path))) return { ...stored.value, produced: false }
        if (!(yield* claim(key))) return yield* Effect.zipRight(Effect.sleep(CLAIM_POLL_MS), attempt)
        return yield* Effect.scoped(
          Effect.gen(function* () {
            yield* Effect.forkScoped(Effect.repeat(renew(key), Schedule.spaced(CLAIM_LEASE_MS / 3)))
            return yield* ensureUnlocked(asset, spec)
          })
        ).pipe(Effect.ensuring(Effect.ignore(release(key))))
      })
      return attempt
    }

    const ensure: Service["ensure"] = (input, spec) =>
      Effect.flatMap(typeof input === "string" ? catalog.get(input) : Effect.succeed(input), (asset) =>
        stripeOf(`${asset.sha256}/${spec.name}/${spec.version}`).withPermits(1)(ensureClaimed(asset, spec))
      )

    const ensureUnlocked = <A>(asset: Media.Asset, spec: Spec<A>) =>
      Effect.gen(function* () {
        const stored = yield* lookup(asset.sha256, spec)
        if (Option.isSome(stored) && (yield* exists(stored.value.path))) return { ...stored.value, produced: false }
        const target = path.join(
          dir,
          spec.name,
          `v${spec.version}`,
          asset.sha256.slice(0, 2),
          `${asset.sha256}.${spec.extension}`
        )
        const fail = derivativeError(spec, asset.sha256)
        yield* Effect.tryPromise({
          try: () => fs.promises.mkdir(path.dirname(target), { recursive: true }),
          catch: fail
        })
        const temp = yield* Effect.acquireRelease(
          Effect.sync(() => `${target}.tmp-${crypto.randomUUID()}`),
          (t) => Effect.promise(() => fs.promises.rm(t, { force: true }))
        )
        const file = yield* reader.localPath(asset)
        const metadata = yield* spec.produce({ asset, file, output: temp })
        const stat = yield* Effect.tryPromise({ try: () => fs.promises.stat(temp), catch: fail })
        yield* Effect.tryPromise({ try: () => fs.promises.rename(temp, target), catch: fail })
        const entry: Entry = {
          sha256: asset.sha256,
          spec: spec.name,
          specVersion: spec.version,
          path: target,
          byteSize: stat.size,
          metadata,
          createdAtMs: yield* Clock.currentTimeMillis
        }
        yield* use("derivatives.index", (k) =>
          k
            .insertInto("jasper_derivatives")
            .values({
              sha256: entry.sha256,
              spec: entry.spec,
              spec_version: entry.specVersion,
              path: entry.path,
              byte_size: entry.byteSize,
              metadata: JSON.stringify(metadata),
              created_at: entry.createdAtMs
            })
            .onConflict((oc) =>
              oc.columns(["sha256", "spec", "spec_version"]).doUpdateSet({
                path: entry.path,
                byte_size: entry.byteSize,
                metadata: JSON.stringify(metadata)
              })
            )
            .execute()
        )
        return { ...entry, produced: true }
      }).pipe(Effect.scoped, Effect.withSpan("Derivatives.ensure", { attributes: { spec: spec.name } }))

    return {
      dir,
      ensure,
      lookup,
      get: (input, spec) => Effect.flatMap(ensure(input, spec), (entry) => spec.read(entry.path, entry.metadata)),
      list: (sha256) =>
        Effect.map(
          use("derivatives.list", (k) =>
            k.selectFrom("jasper_derivatives").selectAll().where("sha256", "=", sha256).orderBy("spec").execute()
          ),
          (rows) => rows.map((r) => toEntry(r, db.capabilities.readJson))
        )
    }
  })

/**
 * The derivatives service as a layer, storing files under `dir`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: {
  readonly dir: string
}): Layer.Layer<Derivatives, StorageError | JasperConfigError, Database.Database | Catalog.Catalog | Reader.Reader> =>
  Layer.effect(Derivatives, make(options))
