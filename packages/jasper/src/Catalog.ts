/**
 * The asset catalog on `@org/storage`: entities with parent/child relations,
 * content-addressed assets (register reads, hashes, probes and stores; identical
 * content returns the existing asset; new content under the same entity and role is
 * a new version), listing with filters, metadata-only label updates that keep
 * content identity, and an ordered, durable change feed.
 *
 * @since 0.1.0
 */
import { Chunk, Clock, Context, Effect, type Either, Layer, Option, ParseResult, Queue, Schema, Stream } from "effect"
import { type Selectable, type SelectQueryBuilder, sql } from "kysely"
import * as crypto from "node:crypto"
import { Database, StorageError as StorageErrors } from "@org/storage"

type StorageError = StorageErrors.StorageError
const StorageError = StorageErrors.StorageError
import { migrations } from "./internal/migrations.js"
import type { Tables } from "./internal/migrations.js"
import {
  AssetNotFoundError,
  type DecodeError,
  EntityNotFoundError,
  InvalidInputError,
  type JasperConfigError,
  type PixelLimitError,
  type ReadError,
  type SubtitleError,
  UnsupportedMediaError
} from "./JasperError.js"
import { decodeOptions } from "./internal/options.js"
import * as Image from "./Image.js"
import * as Media from "./Media.js"
import * as Probe from "./Probe.js"
import * as Reader from "./Reader.js"

/**
 * Any error `register` can give for one asset.
 *
 * @since 0.1.0
 * @category models
 */
export type RegisterError =
  | ReadError
  | DecodeError
  | PixelLimitError
  | UnsupportedMediaError
  | SubtitleError
  | InvalidInputError
  | EntityNotFoundError
  | StorageError

/**
 * Filters of {@link Service.list}; all optional and combined with "and".
 *
 * @since 0.1.0
 * @category models
 */
export interface ListFilter {
  readonly entityId?: string
  /** Assets of the children (of this kind, when given) of an entity: "the artworks of a title". */
  readonly childrenOf?: { readonly entityId: string; readonly kind?: string }
  readonly role?: string
  readonly mediaType?: Media.MediaType
  readonly sha256?: string
  /** Only the latest version per entity and role. */
  readonly latest?: boolean
  /** A string label that must equal the value. */
  readonly label?: { readonly key: string; readonly value: string }
  readonly limit?: number
  readonly offset?: number
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Largest image `width * height` accepted at registration (default 100 megapixels). */
  readonly pixelLimit?: number
}

const OptionsSchema = Schema.Struct({
  pixelLimit: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { exact: true })
})

/**
 * The shape of the `Catalog` service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Creates or replaces an entity; its parent must exist and no cycle may form. */
  readonly putEntity: (
    entity: Media.EntityInput
  ) => Effect.Effect<Media.Entity, InvalidInputError | EntityNotFoundError | StorageError>
  readonly getEntity: (id: string) => Effect.Effect<Media.Entity, EntityNotFoundError | StorageError>
  /** The children of an entity (of one kind when given), by id. */
  readonly children: (
    id: string,
    options?: { readonly kind?: string }
  ) => Effect.Effect<ReadonlyArray<Media.Entity>, StorageError>
  /**
   * Entities by id, in the order of `ids` (`undefined` for an unknown id): a batched
   * read (one query per 500 ids), for callers that walk many entities.
   */
  readonly getEntities: (
    ids: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<Media.Entity | undefined>, StorageError>
  /** The children (of one kind when given) of each id, by id; batched as {@link Service.getEntities}. */
  readonly childrenOf: (
    ids: ReadonlyArray<string>,
    options?: { readonly kind?: string }
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<Media.Entity>>, StorageError>
  /**
   * The latest asset in a role of each entity, in the order of `entityIds`
   * (`undefined` when it has none); batched as {@link Service.getEntities}.
   */
  readonly latestAssets: (
    entityIds: ReadonlyArray<string>,
    role: string
  ) => Effect.Effect<ReadonlyArray<Media.Asset | undefined>, StorageError>
  /**
   * Entities (of one kind when given) in id order, a page at a time: at most `limit`
   * (default 1000) with an id after the cursor `after` (the last id of the previous page).
   */
  readonly listEntities: (options?: {
    readonly kind?: string
    readonly after?: string
    readonly limit?: number
  }) => Effect.Effect<ReadonlyArray<Media.Entity>, StorageError>
  /** The chain of parents of an entity, nearest first. */
  readonly ancestors: (id: string) => Effect.Effect<ReadonlyArray<Media.Entity>, EntityNotFoundError | StorageError>
  /**
   * Reads, hashes, probes and stores an asset. Identical content under the same
   * entity and role returns the existing asset; new content is a new version (the
   * old one stays readable). Bad input writes nothing.
   */
  readonly register: (registration: Media.Registration) => Effect.Effect<Media.Asset, RegisterError>
  /** Registers many; one bad asset does not stop the others (a result per item, in order). */
  readonly registerAll: (
    registrations: ReadonlyArray<Media.Registration>,
    options?: { readonly concurrency?: number }
  ) => Effect.Effect<ReadonlyArray<Either.Either<Media.Asset, RegisterError>>>
  readonly get: (id: string) => Effect.Effect<Media.Asset, AssetNotFoundError | StorageError>
  /** Assets matching a filter, in registration order. A label key must match `[A-Za-z0-9_:.-]+`. */
  readonly list: (filter?: ListFilter) => Effect.Effect<ReadonlyArray<Media.Asset>, InvalidInputError | StorageError>
  /** Every version of an entity's asset in a role, oldest first. */
  readonly versions: (entityId: string, role: string) => Effect.Effect<ReadonlyArray<Media.Asset>, StorageError>
  /** Replaces (or with `merge`, merges) an asset's labels: metadata only, content identity unchanged. */
  readonly updateLabels: (
    id: string,
    labels: Media.Attributes,
    options?: { readonly merge?: boolean }
  ) => Effect.Effect<Media.Asset, AssetNotFoundError | InvalidInputError | StorageError>
  /** Change events after position `since` (0 for all), in order. */
  readonly changes: (
    since: number,
    options?: { readonly limit?: number }
  ) => Effect.Effect<ReadonlyArray<Media.Change>, StorageError>
  /** The position of the latest change (0 when none). */
  readonly head: Effect.Effect<number, StorageError>
  /**
   * Follows the change feed from `since` (never ends). Caught up, it waits for a
   * commit: on PostgreSQL it is woken by LISTEN/NOTIFY (polling every `pollMs` stays
   * as the fallback); elsewhere (SQLite) it polls every `pollMs` (default 1000).
   */
  readonly follow: (since: number, options?: { readonly pollMs?: number }) => Stream.Stream<Media.Change, StorageError>
}

/**
 * The catalog service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Catalog extends Context.Tag("@org/jasper/Catalog")<Catalog, Service>() {}

const invalid = (subject: string, error: ParseResult.ParseError) =>
  new InvalidInputError({ subject, message: `${subject}: ${ParseResult.TreeFormatter.formatErrorSync(error)}` })

const corrupt = (operation: string) => (error: ParseResult.ParseError) =>
  new StorageError({ operation, message: `${operation}: stored row does not decode: ${error.message}`, cause: error })

const decodeAsset = Schema.decodeUnknown(Media.Asset)
const decodeEntity = Schema.decodeUnknown(Media.Entity)
const decodeChange = Schema.decodeUnknown(Media.Change)

/** The PostgreSQL channel a commit to the change feed notifies. */
const CHANGES_CHANNEL = "jasper_changes"

type ReadJson = (value: unknown) => unknown

const toAsset = (row: Selectable<Tables["jasper_assets"]>, readJson: ReadJson) =>
  decodeAsset({
    id: row.id,
    entityId: row.entity_id,
    role: row.role,
    version: Number(row.version),
    mediaType: row.media_type,
    uri: row.uri,
    sha256: row.sha256,
    byteSize: Number(row.byte_size),
    metadata: readJson(row.metadata),
    labels: readJson(row.labels),
    createdAtMs: Number(row.created_at),
    updatedAtMs: Number(row.updated_at)
  }).pipe(Effect.mapError(corrupt("catalog.read-asset")))

const toEntity = (row: Selectable<Tables["jasper_entities"]>, readJson: ReadJson) =>
  decodeEntity({
    id: row.id,
    kind: row.kind,
    ...(row.title !== null ? { title: row.title } : {}),
    ...(row.parent_id !== null ? { parentId: row.parent_id } : {}),
    attributes: readJson(row.attributes)
  }).pipe(Effect.mapError(corrupt("catalog.read-entity")))

const toChange = (row: Selectable<Tables["jasper_changes"]>) =>
  decodeChange({
    seq: Number(row.seq),
    kind: row.kind,
    assetId: row.asset_id,
    entityId: row.entity_id,
    role: row.role,
    version: Number(row.version),
    sha256: row.sha256,
    atMs: Number(row.at)
  }).pipe(Effect.mapError(corrupt("catalog.read-change")))

/** Metadata probed by this version (older rows lack the display and timeline fields and are probed again). */
const isCurrent = (m: Media.Metadata): boolean =>
  m._tag === "image"
    ? m.displayWidth !== undefined
    : m._tag === "video"
      ? m.startNs !== undefined && m.endNs !== undefined
      : m._tag === "audio"
        ? m.startNs !== undefined
        : true

/** Text metadata carries the registration's language; the rest is the content's. */
const withLanguage = (m: Media.Metadata, language: string | undefined): Media.Metadata => {
  if (m._tag !== "text") return m
  const { language: _, ...rest } = m
  return language ? { ...rest, language } : rest
}

/**
 * The deterministic id of the asset with this content under this entity and role.
 *
 * @since 0.1.0
 * @category helpers
 */
export const assetId = (entityId: string, role: string, sha256: string): string =>
  `asset_${crypto.createHash("sha256").update(`${entityId}\u0000${role}\u0000${sha256}`).digest("hex").slice(0, 24)}`

/**
 * Builds the catalog on the `Database` and `Reader` in context, applying its
 * migrations (`@org/jasper`). An unknown or bad option is a `JasperConfigError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  input: Options = {}
): Effect.Effect<Service, StorageError | JasperConfigError, Database.Database | Reader.Reader> =>
  Effect.gen(function* () {
    const options: Options = yield* decodeOptions("Catalog", OptionsSchema, input)
    const db = yield* Database.Database
    const reader = yield* Reader.Reader
    yield* db.migrate("@org/jasper", migrations)
    const use = Database.typed<Tables>(db)
    const readJson = db.capabilities.readJson
    const assetFrom = (row: Selectable<Tables["jasper_assets"]>) => toAsset(row, readJson)
    const entityFrom = (row: Selectable<Tables["jasper_entities"]>) => toEntity(row, readJson)

    const getEntity = (id: string): Effect.Effect<Media.Entity, EntityNotFoundError | StorageError> =>
      Effect.flatMap(
        use("catalog.get-entity", (k) =>
          k.selectFrom("jasper_entities").selectAll().where("id", "=", id).executeTakeFirst()
        ),
        (row): Effect.Effect<Media.Entity, EntityNotFoundError | StorageError> =>
          row ? entityFrom(row) : Effect.fail(new EntityNotFoundError({ entityId: id, message: `no entity ${id}` }))
      )

    const ancestors = (id: string) =>
      Effect.gen(function* () {
        const chain: Array<Media.Entity> = []
        let current: Media.Entity = yield* getEntity(id)
        while (current.parentId !== undefined && chain.length < 1000) {
          current = yield* getEntity(current.parentId)
          chain.push(current)
        }
        return chain
      })

    const putEntity: Service["putEntity"] = (input) =>
      Effect.gen(function* () {
        const entity = yield* Effect.mapError(Schema.decodeUnknown(Media.Entity)(input), (e) =>
          invalid(`entity ${(input as { id?: unknown })?.id ?? "?"}`, e)
        )
        if (entity.parentId !== undefined) {
          if (entity.parentId === entity.id) {
            return yield* new InvalidInputError({
              subject: `entity ${entity.id}`,
              message: `entity ${entity.id} cannot be its own parent`
            })
          }
          const above = yield* ancestors(entity.parentId)
          if (above.some((e) => e.id === entity.id)) {
            return yield* new InvalidInputError({
              subject: `entity ${entity.id}`,
              message: `entity ${entity.id}: parent ${entity.parentId} descends from it (a cycle)`
            })
          }
        }
        const row = {
          id: entity.id,
          kind: entity.kind,
          title: entity.title ?? null,
          parent_id: entity.parentId ?? null,
          attributes: JSON.stringify(entity.attributes)
        }
        const createdAt = yield* Clock.currentTimeMillis
        yield* use("catalog.put-entity", (k) =>
          k
            .insertInto("jasper_entities")
            .values({ ...row, created_at: createdAt })
            .onConflict((oc) =>
              oc
                .column("id")
                .doUpdateSet({ kind: row.kind, title: row.title, parent_id: row.parent_id, attributes: row.attributes })
            )
            .execute()
        )
        return entity
      })

    const children: Service["children"] = (id, opts) =>
      Effect.flatMap(
        use("catalog.children", (k) => {
          let q = k.selectFrom("jasper_entities").selectAll().where("parent_id", "=", id)
          if (opts?.kind) q = q.where("kind", "=", opts.kind)
          return q.orderBy("id").execute()
        }),
        (rows) => Effect.forEach(rows, entityFrom)
      )

    /** Runs `f` on chunks of at most 500 distinct ids (well under every engine's parameter limit). */
    const batched = <A>(
      ids: ReadonlyArray<string>,
      f: (chunk: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<A>, StorageError>
    ): Effect.Effect<ReadonlyArray<A>, StorageError> => {
      const unique = [...new Set(ids)]
      const chunks: Array<ReadonlyArray<string>> = []
      for (let i = 0; i < unique.length; i += 500) chunks.push(unique.slice(i, i + 500))
      return Effect.map(Effect.forEach(chunks, f), (parts) => parts.flat())
    }

    const getEntities: Service["getEntities"] = (ids) =>
      Effect.map(
        batched(ids, (chunk) =>
          Effect.flatMap(
            use("catalog.get-entities", (k) =>
              k.selectFrom("jasper_entities").selectAll().where("id", "in", chunk).execute()
            ),
            (rows) => Effect.forEach(rows, entityFrom)
          )
        ),
        (found) => {
          const byId = new Map(found.map((e) => [e.id, e]))
          return ids.map((id) => byId.get(id))
        }
      )

    const childrenOf: Service["childrenOf"] = (ids, opts) =>
      Effect.map(
        batched(ids, (chunk) =>
          Effect.flatMap(
            use("catalog.children-of", (k) => {
              let q = k.selectFrom("jasper_entities").selectAll().where("parent_id", "in", chunk)
              if (opts?.kind) q = q.where("kind", "=", opts.kind)
              return q.orderBy("id").execute()
            }),
            (rows) => Effect.forEach(rows, entityFrom)
          )
        ),
        (found) => {
          const byParent = new Map<string, Array<Media.Entity>>()
          for (const e of found) {
            const list = byParent.get(e.parentId!)
            if (list === undefined) byParent.set(e.parentId!, [e])
            else list.push(e)
          }
          // the children of one parent come from one query, in its id order (as `children`)
          return ids.map((id) => byParent.get(id) ?? [])
        }
      )

    const latestAssets: Service["latestAssets"] = (entityIds, role) =>
      Effect.map(
        batched(entityIds, (chunk) =>
          Effect.flatMap(
            use("catalog.latest-assets", (k) =>
              k
                .selectFrom("jasper_assets as a")
                .selectAll("a")
                .where("a.entity_id", "in", chunk)
                .where("a.role", "=", role)
                .where(({ eb, selectFrom }) =>
                  eb(
                    "a.version",
                    "=",
                    selectFrom("jasper_assets as b")
                      .select((e) => e.fn.max("b.version").as("v"))
                      .whereRef("b.entity_id", "=", "a.entity_id")
                      .whereRef("b.role", "=", "a.role")
                  )
                )
                .execute()
            ),
            (rows) => Effect.forEach(rows, assetFrom)
          )
        ),
        (found) => {
          const byEntity = new Map(found.map((a) => [a.entityId, a]))
          return entityIds.map((id) => byEntity.get(id))
        }
      )

    const listEntities: Service["listEntities"] = (opts = {}) =>
      Effect.flatMap(
        use("catalog.list-entities", (k) => {
          let q = k.selectFrom("jasper_entities").selectAll()
          if (opts.kind !== undefined) q = q.where("kind", "=", opts.kind)
          if (opts.after !== undefined) q = q.where("id", ">", opts.after)
          return q
            .orderBy("id")
            .limit(Math.max(1, Math.floor(opts.limit ?? 1000)))
            .execute()
        }),
        (rows) => Effect.forEach(rows, entityFrom)
      )

    const withinPixelLimit = (asset: Media.Asset) =>
      asset.metadata._tag !== "image" ||
      asset.metadata.width * asset.metadata.height <= (options.pixelLimit ?? Image.DEFAULT_PIXEL_LIMIT)

    const nextSeq = use("catalog.sequence", (k) =>
      k
        .updateTable("jasper_sequence")
        .set((eb) => ({ value: eb("value", "+", 1) }))
        .where("name", "=", "changes")
        .returning("value")
        .executeTakeFirstOrThrow()
    ).pipe(Effect.map((r) => Number(r.value)))
    // takes the feed's row lock first, so that positions commit in the order they are handed out
    const lockFeed = use("catalog.lock-feed", (k) =>
      k
        .updateTable("jasper_sequence")
        .set((eb) => ({ value: eb.ref("value") }))
        .where("name", "=", "changes")
        .execute()
    )

    const appendChange = (
      kind: Media.Change["kind"],
      asset: { id: string; entityId: string; role: string; version: number; sha256: string },
      seq: number,
      at: number
    ) =>
      use("catalog.append-change", (k) =>
        k
          .insertInto("jasper_changes")
          .values({
            seq,
            kind,
            asset_id: asset.id,
            entity_id: asset.entityId,
            role: asset.role,
            version: asset.version,
            sha256: asset.sha256,
            at
          })
          .execute()
      )

    // on PostgreSQL, followers are woken on commit (NOTIFY inside the transaction)
    const notify = db.capabilities.listenNotify
      ? use("catalog.notify", (k) => sql`select pg_notify(${CHANGES_CHANNEL}, '')`.execute(k))
      : Effect.void

    type AssetQuery = SelectQueryBuilder<Tables, "jasper_assets", Selectable<Tables["jasper_assets"]>>
    const findAsset = (where: (q: AssetQuery) => AssetQuery, operation: string) =>
      Effect.flatMap(
        use(operation, (k) => where(k.selectFrom("jasper_assets").selectAll()).executeTakeFirst()),
        (row) => (row ? Effect.map(assetFrom(row), Option.some) : Effect.succeed(Option.none<Media.Asset>()))
      )

    const get: Service["get"] = (id) =>
      Effect.flatMap(
        findAsset((q) => q.where("id", "=", id), "catalog.get"),
        (o) =>
          Option.isSome(o)
            ? Effect.succeed(o.value)
            : Effect.fail(new AssetNotFoundError({ assetId: id, message: `no asset ${id}` }))
      )

    const register: Service["register"] = (input) =>
      Effect.scoped(
        Effect.gen(function* () {
          const reg = yield* Effect.mapError(Schema.decodeUnknown(Media.Registration)(input), (e) =>
            invalid(`registration of ${(input as { uri?: unknown })?.uri ?? "?"}`, e)
          )
          const uri = Reader.uriOf(reg.uri)
          yield* getEntity(reg.entityId)
          const mediaType = reg.mediaType ?? Media.mediaTypeOf(uri)
          if (mediaType === undefined) {
            return yield* new UnsupportedMediaError({
              uri,
              message: `${uri}: cannot tell the media type from the name; pass mediaType`
            })
          }
          const local = yield* reader.localize(uri)
          const id = assetId(reg.entityId, reg.role, local.sha256)
          // the same bytes under this entity and role were probed when first registered:
          // return that asset without probing again (unless this catalog's pixel limit refuses it)
          const known = yield* findAsset((q) => q.where("id", "=", id), "catalog.register.known")
          if (Option.isSome(known) && known.value.mediaType === mediaType && withinPixelLimit(known.value)) {
            return known.value
          }
          // the same bytes anywhere in the catalog (another entity or role) were probed already:
          // reuse that metadata (when it has every field this version probes) instead of probing again
          const twin = yield* findAsset(
            (q) =>
              q.where("sha256", "=", local.sha256).where("media_type", "=", mediaType).orderBy("added_seq").limit(1),
            "catalog.register.twin"
          )
          const reused =
            Option.isSome(twin) && withinPixelLimit(twin.value) && isCurrent(twin.value.metadata)
              ? Option.some(withLanguage(twin.value.metadata, reg.language))
              : Option.none<Media.Metadata>()
          const metadata = Option.isSome(reused)
            ? reused.value
            : yield* Probe.probe(
                local.path,
                mediaType,
                { uri },
                {
                  ...(options.pixelLimit ? { pixelLimit: options.pixelLimit } : {}),
                  language: reg.language
                }
              )
          return yield* db.transaction(
            Effect.gen(function* () {
              yield* lockFeed
              const existing = yield* findAsset(
                (q) =>
                  q
                    .where("entity_id", "=", reg.entityId)
                    .where("role", "=", reg.role)
                    .where("sha256", "=", local.sha256),
                "catalog.register.find"
              )
              if (Option.isSome(existing)) return existing.value
              const top = yield* use("catalog.register.version", (k) =>
                k
                  .selectFrom("jasper_assets")
                  .select((eb) => eb.fn.max("version").as("v"))
                  .where("entity_id", "=", reg.entityId)
                  .where("role", "=", reg.role)
                  .executeTakeFirst()
              )
              const version = Number(top?.v ?? 0) + 1
              const seq = yield* nextSeq
              const now = yield* Clock.currentTimeMillis
              const asset: Media.Asset = {
                id,
                entityId: reg.entityId,
                role: reg.role,
                version,
                mediaType,
                uri,
                sha256: local.sha256,
                byteSize: local.byteSize,
                metadata,
                labels: reg.labels,
                createdAtMs: now,
                updatedAtMs: now
              }
              yield* use("catalog.register.insert", (k) =>
                k
                  .insertInto("jasper_assets")
                  .values({
                    id,
                    entity_id: asset.entityId,
                    role: asset.role,
                    version,
                    media_type: mediaType,
                    uri,
                    sha256: asset.sha256,
                    byte_size: asset.byteSize,
                    metadata: JSON.stringify(metadata),
                    labels: JSON.stringify(asset.labels),
                    added_seq: seq,
                    created_at: now,
                    updated_at: now
                  })
                  .execute()
              )
              yield* appendChange(version === 1 ? "added" : "changed", asset, seq, now)
              yield* notify
              return asset
            })
          )
        })
      ).pipe(Effect.withSpan("Catalog.register", { attributes: { uri: (input as { uri?: string })?.uri } }))

    const list: Service["list"] = (filter = {}) =>
      filter.label !== undefined && !/^[A-Za-z0-9_:.-]{1,64}$/.test(filter.label.key)
        ? Effect.fail(
            new InvalidInputError({
              subject: `label filter ${JSON.stringify(filter.label.key)}`,
              message: `label key ${JSON.stringify(filter.label.key)} must match [A-Za-z0-9_:.-]{1,64}`
            })
          )
        : Effect.flatMap(
            use("catalog.list", (k) => {
              let q = k.selectFrom("jasper_assets as a").selectAll("a")
              if (filter.entityId !== undefined) q = q.where("a.entity_id", "=", filter.entityId)
              if (filter.childrenOf !== undefined) {
                const { entityId, kind } = filter.childrenOf
                q = q.where("a.entity_id", "in", (eb) => {
                  let sub = eb.selectFrom("jasper_entities").select("id").where("parent_id", "=", entityId)
                  if (kind !== undefined) sub = sub.where("kind", "=", kind)
                  return sub
                })
              }
              if (filter.role !== undefined) q = q.where("a.role", "=", filter.role)
              if (filter.mediaType !== undefined) q = q.where("a.media_type", "=", filter.mediaType)
              if (filter.sha256 !== undefined) q = q.where("a.sha256", "=", filter.sha256)
              if (filter.latest) {
                q = q.where(({ eb, selectFrom }) =>
                  eb(
                    "a.version",
                    "=",
                    selectFrom("jasper_assets as b")
                      .select((e) => e.fn.max("b.version").as("v"))
                      .whereRef("b.entity_id", "=", "a.entity_id")
                      .whereRef("b.role", "=", "a.role")
                  )
                )
              }
              if (filter.label !== undefined) {
                const { key, value } = filter.label
                const labels: `a.${keyof Tables["jasper_assets"] & string}` = "a.labels"
                q = q.where(sql.raw<string>(db.capabilities.jsonText(labels, [key])), "=", value)
              }
              q = q.orderBy("a.added_seq")
              if (filter.limit !== undefined) q = q.limit(filter.limit)
              if (filter.offset !== undefined) q = q.offset(filter.offset)
              return q.execute()
            }),
            (rows) => Effect.forEach(rows, assetFrom)
          )

    const updateLabels: Service["updateLabels"] = (id, labels, opts) =>
      Effect.gen(function* () {
        const decoded = yield* Effect.mapError(Schema.decodeUnknown(Media.Attributes)(labels), (e) =>
          invalid(`labels of ${id}`, e)
        )
        return yield* db.transaction(
          Effect.gen(function* () {
            yield* lockFeed
            const asset = yield* get(id)
            const next = opts?.merge ? { ...asset.labels, ...decoded } : decoded
            const now = yield* Clock.currentTimeMillis
            yield* use("catalog.update-labels", (k) =>
              k
                .updateTable("jasper_assets")
                .set({ labels: JSON.stringify(next), updated_at: now })
                .where("id", "=", id)
                .execute()
            )
            const seq = yield* nextSeq
            yield* appendChange("metadata", asset, seq, now)
            yield* notify
            return { ...asset, labels: next, updatedAtMs: now }
          })
        )
      })

    const changes: Service["changes"] = (since, opts) =>
      Effect.flatMap(
        use("catalog.changes", (k) =>
          k
            .selectFrom("jasper_changes")
            .selectAll()
            .where("seq", ">", since)
            .orderBy("seq")
            .limit(opts?.limit ?? 1000)
            .execute()
        ),
        (rows) => Effect.forEach(rows, toChange)
      )

    const service: Service = {
      putEntity,
      getEntity,
      getEntities,
      children,
      childrenOf,
      latestAssets,
      listEntities,
      ancestors,
      register,
      registerAll: (registrations, opts) =>
        Effect.forEach(registrations, (r) => Effect.either(register(r)), { concurrency: opts?.concurrency ?? 2 }),
      get,
      list,
      versions: (entityId, role) =>
        Effect.flatMap(
          use("catalog.versions", (k) =>
            k
              .selectFrom("jasper_assets")
              .selectAll()
              .where("entity_id", "=", entityId)
              .where("role", "=", role)
              .orderBy("version")
              .execute()
          ),
          (rows) => Effect.forEach(rows, assetFrom)
        ),
      updateLabels,
      changes,
      head: Effect.map(
        use("catalog.head", (k) =>
          k.selectFrom("jasper_sequence").select("value").where("name", "=", "changes").executeTakeFirst()
        ),
        (r) => Number(r?.value ?? 0)
      ),
      follow: (since, opts) => {
        const pollMs = opts?.pollMs ?? 1000
        const feed = (wait: Effect.Effect<void>) =>
          Stream.unfoldChunkEffect(since, (cursor) =>
            Effect.flatMap(changes(cursor), (batch) =>
              batch.length > 0
                ? Effect.succeed(Option.some([Chunk.fromIterable(batch), batch[batch.length - 1]!.seq] as const))
                : Effect.as(wait, Option.some([Chunk.empty<Media.Change>(), cursor] as const))
            )
          )
        const listen = db.capabilities.listenNotify ? db.listen : undefined
        if (!listen) return feed(Effect.sleep(pollMs))
        // LISTEN first, then read: a change committed in between wakes the next wait;
        // polling stays as the fallback (a lost connection, a missed notification)
        return Stream.unwrapScoped(
          Effect.map(listen(CHANGES_CHANNEL), (wake) =>
            feed(
              Effect.zipRight(
                Effect.race(Effect.asVoid(Queue.take(wake)), Effect.sleep(pollMs)),
                Effect.asVoid(Queue.takeAll(wake))
              )
            )
          )
        )
      }
    }
    return service
  })

/**
 * The catalog as a layer; needs a `Database` (from `@org/storage`) and a `Reader`.
 *
 * @example
 * ```ts
 * const Jasper = Catalog.layer().pipe(
 *   Layer.provideMerge(Reader.layer({ roots: ["/media"] })),
 *   Layer.provide(SqliteStorage.layer({ filename: "media.db" }))
 * )
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<Catalog, StorageError | JasperConfigError, Database.Database | Reader.Reader> =>
  Layer.effect(Catalog, make(options))
