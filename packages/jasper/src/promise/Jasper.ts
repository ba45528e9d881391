/**
 * Jasper as Promises: {@link open} a catalog with its readers and derivatives on a
 * SQLite file or PostgreSQL, register and decode media, {@link Jasper.close close} it.
 * Rejections are the tagged errors of the Effect API (`ReadError`, `DecodeError`,
 * `AssetNotFoundError`, `StorageError`, ...).
 *
 * @since 0.1.0
 */
import { Effect, Either, Layer, Stream } from "effect"
import { PromiseRuntime } from "@org/storage"
import type * as Audio from "../Audio.js"
import * as AudioModule from "../Audio.js"
import * as Catalog from "../Catalog.js"
import * as Derivative from "../Derivative.js"
import * as Image from "../Image.js"
import * as JasperModule from "../Jasper.js"
import type * as Media from "../Media.js"
import type * as Reader from "../Reader.js"
import * as Subtitles from "../Subtitles.js"
import type * as Time from "../Time.js"
import * as Video from "../Video.js"

/**
 * Where the catalog lives (`{ sqlite: "media.db" }` or `{ postgres: url }`) and
 * Jasper's options (`roots` of the `file:` scheme, `derivatives` folder, `http`,
 * `pixelLimit`, ...), as for `Jasper.layer`.
 *
 * @since 0.1.0
 * @category models
 */
export type OpenOptions = PromiseRuntime.StorageOptions & JasperModule.Options

/**
 * An open Jasper: the catalog's calls, the decoders and the derivatives. Every
 * method returns a Promise; `close` releases the database.
 *
 * @since 0.1.0
 * @category models
 */
export interface Jasper {
  /** Creates or replaces an entity; its parent must exist and no cycle may form. */
  readonly putEntity: (entity: Media.EntityInput) => Promise<Media.Entity>
  readonly getEntity: (id: string) => Promise<Media.Entity>
  /** The children of an entity (of one kind when given), by id. */
  readonly children: (id: string, options?: { readonly kind?: string }) => Promise<ReadonlyArray<Media.Entity>>
  /** Reads, hashes, probes and stores an asset; the same bytes again return the same asset. */
  readonly register: (registration: Media.Registration) => Promise<Media.Asset>
  /** Registers many: per item the asset or the error that refused it, in order. */
  readonly registerAll: (
    registrations: ReadonlyArray<Media.Registration>,
    options?: { readonly concurrency?: number }
  ) => Promise<Array<Media.Asset | Catalog.RegisterError>>
  /** An asset by id (rejects with `AssetNotFoundError`). */
  readonly get: (id: string) => Promise<Media.Asset>
  /** Assets matching a filter, in registration order. */
  readonly list: (filter?: Catalog.ListFilter) => Promise<ReadonlyArray<Media.Asset>>
  /** Every version of an entity's asset in a role, oldest first. */
  readonly versions: (entityId: string, role: string) => Promise<ReadonlyArray<Media.Asset>>
  /** Replaces (or merges) an asset's labels: metadata only. */
  readonly updateLabels: (
    id: string,
    labels: Media.Attributes,
    options?: { readonly merge?: boolean }
  ) => Promise<Media.Asset>
  /** Change events after position `since` (0 for all), in order. */
  readonly changes: (since: number, options?: { readonly limit?: number }) => Promise<ReadonlyArray<Media.Change>>
  /** An image as a tensor (`Image.decode`). */
  readonly decodeImage: (source: Reader.Source, options?: Image.DecodeOptions) => Promise<Image.Tensor>
  /** A video's frames as raw RGB (`Video.frames`), collected: ask for what fits in memory (`fps`, `at`, `range`, a size). */
  readonly frames: (source: Reader.Source, options?: Video.FrameOptions) => Promise<Array<Video.Frame>>
  /** A video's shots by scene-change detection. */
  readonly shots: (source: Reader.Source, options?: Video.ShotOptions) => Promise<ReadonlyArray<Time.TimeRange>>
  /** Audio as Float32 PCM chunks (`Audio.pcm`), collected. */
  readonly pcm: (source: Reader.Source, options?: Audio.PcmOptions) => Promise<Array<Audio.Chunk>>
  /** SRT or WebVTT cues. */
  readonly subtitles: (
    source: Reader.Source,
    options?: { readonly format?: Subtitles.Format; readonly maxBytes?: number }
  ) => Promise<ReadonlyArray<Subtitles.Cue>>
  /** A stored derivative of an asset: produced and stored once per content hash, read afterwards. */
  readonly derivative: <A>(asset: Media.Asset | string, spec: Derivative.Spec<A>) => Promise<A>
  /** Which ffmpeg/ffprobe are in use, their versions, and why. */
  readonly diagnostics: () => Promise<JasperModule.Diagnostics>
  /** Closes the catalog and its database connection (once; later calls reject). */
  readonly close: () => Promise<void>
}

type Services = Reader.Reader | Catalog.Catalog | Derivative.Derivatives

/**
 * Opens Jasper on a database: connects, runs the catalog's migrations and resolves
 * when it is ready. Rejects with `StorageConfigError` for bad storage options and
 * `StorageError` when the database cannot be opened.
 *
 * @example
 * ```js
 * const jasper = await Jasper.open({ sqlite: "media.db", roots: ["./media"], derivatives: "./derivatives" })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const open = async (options: OpenOptions): Promise<Jasper> => {
  const [storage, jasperOptions] = PromiseRuntime.splitStorage(options)
  const layer = JasperModule.layer(jasperOptions as JasperModule.Options).pipe(
    Layer.provide(PromiseRuntime.storageLayer(storage as PromiseRuntime.StorageOptions))
  )
  const handle = await PromiseRuntime.open<Services, unknown>(layer)
  const catalog = <A, E>(f: (catalog: Catalog.Service) => Effect.Effect<A, E>): Promise<A> =>
    handle.run(Effect.flatMap(Catalog.Catalog, f))
  return {
    putEntity: (entity) => catalog((c) => c.putEntity(entity)),
    getEntity: (id) => catalog((c) => c.getEntity(id)),
    children: (id, options) => catalog((c) => c.children(id, options)),
    register: (registration) => catalog((c) => c.register(registration)),
    registerAll: (registrations, options) =>
      catalog((c) =>
        Effect.map(c.registerAll(registrations, options), (results) =>
          results.map((r) => (Either.isLeft(r) ? r.left : r.right))
        )
      ),
    get: (id) => catalog((c) => c.get(id)),
    list: (filter) => catalog((c) => c.list(filter)),
    versions: (entityId, role) => catalog((c) => c.versions(entityId, role)),
    updateLabels: (id, labels, options) => catalog((c) => c.updateLabels(id, labels, options)),
    changes: (since, options) => catalog((c) => c.changes(since, options)),
    decodeImage: (source, options) => handle.run(Image.decode(source, options)),
    frames: (source, options) =>
      handle.run(Effect.map(Stream.runCollect(Video.frames(source, options)), (chunk) => Array.from(chunk))),
    shots: (source, options) => handle.run(Video.shots(source, options)),
    pcm: (source, options) =>
      handle.run(Effect.map(Stream.runCollect(AudioModule.pcm(source, options)), (chunk) => Array.from(chunk))),
    subtitles: (source, options) => handle.run(Subtitles.decode(source, options)),
    derivative: (asset, spec) => handle.run(Effect.flatMap(Derivative.Derivatives, (d) => d.get(asset, spec))),
    diagnostics: () => handle.run(JasperModule.diagnostics),
    close: handle.close
  }
}
