import { Context, Effect } from "effect"
import type { Catalog } from "@org/jasper"
import { SourceError } from "../ComputeError.js"
import type { Asset, Change, Entity, Service } from "../EntitySource.js"

/**
 * The catalog's tag by its key: a type-only import of `@org/jasper`, so this
 * package loads without jasper (and its native media libraries) installed.
 */
const CatalogTag = Context.GenericTag<Catalog.Catalog, Catalog.Service>("@org/jasper/Catalog")

const wrap =
  (operation: string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, SourceError, R> =>
    Effect.mapError(
      self,
      (cause) =>
        new SourceError({
          operation,
          message: `jasper ${operation}: ${(cause as { message?: string })?.message ?? String(cause)}`,
          cause
        })
    )

const toEntity = (e: {
  readonly id: string
  readonly kind: string
  readonly parentId?: string | undefined
  readonly attributes?: Readonly<Record<string, unknown>> | undefined
}): Entity => ({
  id: e.id,
  kind: e.kind,
  parentId: e.parentId,
  attributes: e.attributes
})

const byId = (a: { readonly id: string }, b: { readonly id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

const toAsset = (a: {
  readonly id: string
  readonly entityId: string
  readonly role: string
  readonly sha256: string
  readonly uri: string
  readonly mediaType: string
  readonly labels: Readonly<Record<string, unknown>>
}): Asset => ({
  id: a.id,
  entityId: a.entityId,
  role: a.role,
  contentHash: a.sha256,
  uri: a.uri,
  mediaType: a.mediaType,
  labels: a.labels
})

/** Entities listed per page (one query each). */
const PAGE = 5000

export const make: Effect.Effect<Service, never, Catalog.Catalog> = Effect.map(CatalogTag, (catalog): Service => {
  // every read is batched: a query per few hundred ids, never one per id
  const entitiesOf = (ids: ReadonlyArray<string>) =>
    Effect.map(catalog.getEntities(ids), (found) => found.map((e) => (e === undefined ? undefined : toEntity(e))))
  const getMany: Service["getMany"] = (ids) => wrap("getEntities")(entitiesOf(ids))
  /** Every entity (of a kind), page by page. */
  const all = (kind: string | undefined) =>
    Effect.gen(function* () {
      const out: Array<Entity> = []
      let after: string | undefined
      for (;;) {
        const page = yield* catalog.listEntities({
          ...(kind !== undefined ? { kind } : {}),
          ...(after !== undefined ? { after } : {}),
          limit: PAGE
        })
        for (const e of page) out.push(toEntity(e))
        if (page.length < PAGE) return out
        after = page[page.length - 1]!.id
      }
    })
  return {
    getMany,
    list: (filter = {}) =>
      wrap("list")(
        Effect.gen(function* () {
          let entities: ReadonlyArray<Entity>
          if (filter.ids !== undefined) {
            entities = (yield* entitiesOf(filter.ids)).filter((e): e is Entity => e !== undefined)
          } else if (filter.parentId !== undefined) {
            entities = (yield* catalog.children(filter.parentId, filter.kind ? { kind: filter.kind } : {})).map(
              toEntity
            )
          } else if (filter.asset === undefined) {
            entities = yield* all(filter.kind)
          } else {
            // entities with an asset matching the filter
            const assets = yield* catalog.list({
              latest: true,
              ...(filter.asset.role !== undefined ? { role: filter.asset.role } : {}),
              ...(filter.asset.label !== undefined ? { label: filter.asset.label } : {})
            })
            entities = (yield* entitiesOf([...new Set(assets.map((a) => a.entityId))])).filter(
              (e): e is Entity => e !== undefined
            )
          }
          return entities
            .filter(
              (e) =>
                (filter.kind === undefined || e.kind === filter.kind) &&
                (filter.parentId === undefined || e.parentId === filter.parentId) &&
                (filter.attribute === undefined || e.attributes?.[filter.attribute.key] === filter.attribute.value)
            )
            .sort(byId)
        })
      ),
    related: (ids, relation) =>
      wrap("related")(
        relation._tag === "Children"
          ? Effect.map(catalog.childrenOf(ids, relation.kind ? { kind: relation.kind } : {}), (lists) =>
              lists.map((cs) => cs.map(toEntity).sort(byId))
            )
          : Effect.gen(function* () {
              const entities = yield* entitiesOf(ids)
              const parentIds = entities.flatMap((e) => (e?.parentId === undefined ? [] : [e.parentId]))
              const parents = new Map<string, Entity>()
              for (const p of yield* entitiesOf(parentIds)) if (p !== undefined) parents.set(p.id, p)
              return entities.map((e): ReadonlyArray<Entity> => {
                const parent = e?.parentId === undefined ? undefined : parents.get(e.parentId)
                return parent === undefined ? [] : [parent]
              })
            })
      ),
    assets: (ids, role) =>
      wrap("assets")(
        Effect.map(catalog.latestAssets(ids, role), (found) =>
          found.map((a) => (a === undefined ? undefined : toAsset(a)))
        )
      ),
    changes: (after, limit) =>
      wrap("changes")(
        Effect.map(catalog.changes(after, { limit }), (changes) =>
          changes.map(
            (c): Change => ({
              seq: c.seq,
              kind: c.kind,
              entityId: c.entityId,
              role: c.role,
              assetId: c.assetId,
              contentHash: c.sha256
            })
          )
        )
      ),
    head: wrap("head")(catalog.head)
  }
})
