/**
 * Where the resolver reads entities, their relations, the content hashes of their
 * assets and the change feed: a small service of its own, so any catalog can feed
 * the mesh. `layerMemory` serves tests and users with their own catalog;
 * `layerJasper` adapts `@org/jasper`'s `Catalog`.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import type { Catalog as JasperCatalog } from "@org/jasper"
import { EntityNotFoundError, type SourceError } from "./ComputeError.js"
import * as Jasper from "./internal/jasperSource.js"
import * as Memory from "./internal/memorySource.js"

/**
 * A media entity: a title, an artwork, a video, a shot.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entity {
  readonly id: string
  readonly kind: string
  /** The parent entity (an artwork's title, a shot's video). */
  readonly parentId?: string | undefined
  readonly attributes?: Readonly<Record<string, unknown>> | undefined
}

/**
 * The latest asset of an entity in a role; `contentHash` identifies its bytes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Asset {
  readonly id: string
  readonly entityId: string
  readonly role: string
  readonly contentHash: string
  readonly uri?: string | undefined
  readonly mediaType?: string | undefined
  readonly labels?: Readonly<Record<string, unknown>> | undefined
}

/**
 * One event of the change feed at position `seq` (strictly increasing): a first
 * asset (`added`), new content (`changed`) or a metadata-only update (`metadata`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Change {
  readonly seq: number
  readonly kind: "added" | "changed" | "metadata"
  readonly entityId: string
  readonly role: string
  readonly assetId: string
  readonly contentHash: string
}

/**
 * Which entities `list` returns; all optional and combined with "and".
 *
 * @since 0.1.0
 * @category models
 */
export interface Filter {
  readonly kind?: string | undefined
  readonly ids?: ReadonlyArray<string> | undefined
  readonly parentId?: string | undefined
  /** Entities with an asset matching this (role, label). */
  readonly asset?:
    | {
        readonly role?: string | undefined
        readonly label?: { readonly key: string; readonly value: string } | undefined
      }
    | undefined
  /** A string attribute that must equal the value. */
  readonly attribute?: { readonly key: string; readonly value: string } | undefined
}

/**
 * A relation between entities: the children (of one kind) or the parent.
 *
 * @since 0.1.0
 * @category models
 */
export type Relation = { readonly _tag: "Children"; readonly kind?: string | undefined } | { readonly _tag: "Parent" }

/**
 * The shape of the `EntitySource` service. Every batched read answers in the order
 * of its ids.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Entities matching a filter, by id. */
  readonly list: (filter?: Filter) => Effect.Effect<ReadonlyArray<Entity>, SourceError>
  /** Entities by id (`undefined` for an unknown id). */
  readonly getMany: (ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Entity | undefined>, SourceError>
  /** Related entities of each id; children in id order (deterministic). */
  readonly related: (
    ids: ReadonlyArray<string>,
    relation: Relation
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<Entity>>, SourceError>
  /** The latest asset of each entity in a role (`undefined` when it has none). */
  readonly assets: (
    ids: ReadonlyArray<string>,
    role: string
  ) => Effect.Effect<ReadonlyArray<Asset | undefined>, SourceError>
  /** Changes after position `after` (0 for all), in order, at most `limit`. */
  readonly changes: (after: number, limit: number) => Effect.Effect<ReadonlyArray<Change>, SourceError>
  /** The position of the latest change (0 when none). */
  readonly head: Effect.Effect<number, SourceError>
}

/**
 * The entity source service.
 *
 * @since 0.1.0
 * @category tags
 */
export class EntitySource extends Context.Tag("@org/amber-compute/EntitySource")<EntitySource, Service>() {}

/**
 * An in-memory source that can be edited: entities and assets are put through
 * its methods, each asset put appends to its change feed.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemorySource extends Service {
  /** Creates or replaces an entity. */
  readonly putEntity: (entity: Entity) => Effect.Effect<void>
  /**
   * Puts an entity's asset in a role: new content is `added` or `changed`, the same
   * content with other labels is `metadata`. Returns the change.
   */
  readonly putAsset: (asset: {
    readonly entityId: string
    readonly role: string
    readonly contentHash: string
    readonly uri?: string | undefined
    readonly labels?: Readonly<Record<string, unknown>> | undefined
  }) => Effect.Effect<Change, EntityNotFoundError>
}

/**
 * What an in-memory source starts with.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryInit {
  readonly entities?: ReadonlyArray<Entity>
  readonly assets?: ReadonlyArray<{
    readonly entityId: string
    readonly role: string
    readonly contentHash: string
    readonly uri?: string
    readonly labels?: Readonly<Record<string, unknown>>
  }>
}

/**
 * Builds an in-memory source (synchronously: a plain object), optionally filled.
 *
 * @example
 * ```ts
 * const source = EntitySource.memory({ entities: [{ id: "t1", kind: "title" }] })
 * const App = Resolver.layerMemory(mesh).pipe(Layer.provide(EntitySource.layerMemory(source)))
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const memory = (init: MemoryInit = {}): MemorySource => Memory.make(init)

/**
 * An in-memory source as a layer (a given one, or a fresh one from `init`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (source: MemorySource | MemoryInit = {}): Layer.Layer<EntitySource> =>
  Layer.sync(EntitySource, () => ("putAsset" in source ? (source as MemorySource) : memory(source as MemoryInit)))

/**
 * A source over `@org/jasper`'s `Catalog` (entities, parent/child relations, the
 * latest asset per role by its sha256, the catalog's change feed).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeJasper: Effect.Effect<Service, never, JasperCatalog.Catalog> = Jasper.make

/**
 * {@link makeJasper} as a layer.
 *
 * @example
 * ```ts
 * const Source = EntitySource.layerJasper.pipe(Layer.provide(Jasper.layer({ roots: ["./media"] })))
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layerJasper: Layer.Layer<EntitySource, never, JasperCatalog.Catalog> = Layer.effect(
  EntitySource,
  makeJasper
)

/**
 * One entity by id, failing with `EntityNotFoundError`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const get = (id: string): Effect.Effect<Entity, EntityNotFoundError | SourceError, EntitySource> =>
  Effect.flatMap(EntitySource, (source) =>
    Effect.flatMap(source.getMany([id]), ([entity]) =>
      entity === undefined
        ? Effect.fail(new EntityNotFoundError({ entity: id, message: `no entity ${id} in the source` }))
        : Effect.succeed(entity)
    )
  )
