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

export const make: Effect.Effect<Service, never, Catalog.Catalog> = Effect.map(CatalogTag, (catalog): Service => {
  const getOne = (id: string): Effect.Effect<Entity | undefined, unknown> =>
    catalog.getEntity(id).pipe(
      Effect.map(toEntity),
      Effect.catchTag("EntityNotFoundError", () => Effect.succeed(undefined))
    )
  const getMany: Service["getMany"] = (ids) => wrap("getEntity")(Effect.forEach(ids, getOne, { concurrency: 8 }))
  return {
    getMany,
    list: (filter = {}) =>
      wrap("list")(
        Effect.gen(function* () {
          let ids: Array<string>
          if (filter.ids !== undefined) ids = [...filter.ids]
          else if (filter.parentId !== undefined) {
            ids = (yield* catalog.children(filter.parentId, filter.kind ? { kind: filter.kind } : {})).map((e) => e.id)
          } else {
            // entities are known through their assets (and the ancestors of those)
            const assets = yield* catalog.list({
              latest: true,
              ...(filter.asset?.role !== undefined ? { role: filter.asset.role } : {}),
              ...(filter.asset?.label !== undefined ? { label: filter.asset.label } : {})
            })
            const seen = new Set(assets.map((a) => a.entityId))
            if (filter.asset === undefined) {
              for (const id of [...seen]) for (const a of yield* catalog.ancestors(id)) seen.add(a.id)
            }
            ids = [...seen]
          }
          const entities = (yield* Effect.forEach(ids, getOne, { concurrency: 8 })).filter(
            (e): e is Entity =>
              e !== undefined &&
              (filter.kind === undefined || e.kind === filter.kind) &&
              (filter.parentId === undefined || e.parentId === filter.parentId) &&
              (filter.attribute === undefined || e.attributes?.[filter.attribute.key] === filter.attribute.value)
          )
          return entities.sort(byId)
        })
      ),
    related: (ids, relation) =>
      wrap("related")(
        relation._tag === "Children"
          ? Effect.forEach(
              ids,
              (id) =>
                Effect.map(catalog.children(id, relation.kind ? { kind: relation.kind } : {}), (cs) =>
                  cs.map(toEntity).sort(byId)
                ),
              { concurrency: 8 }
            )
          : Effect.flatMap(getMany(ids), (entities) =>
              Effect.forEach(
                entities,
                (e) =>
                  e?.parentId === undefined
                    ? Effect.succeed([])
                    : Effect.map(getOne(e.parentId), (p): ReadonlyArray<Entity> => (p === undefined ? [] : [p])),
                { concurrency: 8 }
              )
            )
      ),
    assets: (ids, role) =>
      wrap("assets")(
        Effect.forEach(
          ids,
          (id) =>
            Effect.map(catalog.list({ entityId: id, role, latest: true }), (list): Asset | undefined => {
              const a = list.at(-1)
              return a === undefined
                ? undefined
                : {
                    id: a.id,
                    entityId: a.entityId,
                    role: a.role,
                    contentHash: a.sha256,
                    uri: a.uri,
                    mediaType: a.mediaType,
                    labels: a.labels
                  }
            }),
          { concurrency: 8 }
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
