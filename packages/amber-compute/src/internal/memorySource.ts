import { Effect } from "effect"
import { EntityNotFoundError } from "../ComputeError.js"
import type { Asset, Change, Entity, Filter, MemoryInit, MemorySource, Relation } from "../EntitySource.js"

const byId = (a: { readonly id: string }, b: { readonly id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

const sameLabels = (a: unknown, b: unknown) => JSON.stringify(a ?? {}) === JSON.stringify(b ?? {})

/** An editable source held in maps; every asset put appends to the change feed. */
export const make = (init: MemoryInit): MemorySource => {
  const entities = new Map<string, Entity>()
  const children = new Map<string, Set<string>>()
  const assets = new Map<string, Asset>()
  const versions = new Map<string, number>()
  const feed: Array<Change> = []

  const link = (entity: Entity, add: boolean) => {
    if (entity.parentId === undefined) return
    let set = children.get(entity.parentId)
    if (set === undefined) children.set(entity.parentId, (set = new Set()))
    if (add) set.add(entity.id)
    else set.delete(entity.id)
  }

  const putEntitySync = (entity: Entity) => {
    const before = entities.get(entity.id)
    if (before !== undefined) link(before, false)
    const frozen = Object.freeze({ ...entity })
    entities.set(entity.id, frozen)
    link(frozen, true)
  }

  const putAssetSync = (input: Parameters<MemorySource["putAsset"]>[0]): Change | EntityNotFoundError => {
    if (!entities.has(input.entityId)) {
      return new EntityNotFoundError({ entity: input.entityId, message: `no entity ${input.entityId} in the source` })
    }
    const key = `${input.entityId}\u0000${input.role}`
    const before = assets.get(key)
    const kind: Change["kind"] =
      before === undefined ? "added" : before.contentHash !== input.contentHash ? "changed" : "metadata"
    const version = (versions.get(key) ?? 0) + (kind === "metadata" ? 0 : 1)
    versions.set(key, version)
    const asset: Asset = Object.freeze({
      id: `${input.entityId}/${input.role}/${version}`,
      entityId: input.entityId,
      role: input.role,
      contentHash: input.contentHash,
      uri: input.uri ?? before?.uri,
      labels: input.labels ?? before?.labels
    })
    if (kind === "metadata" && sameLabels(before?.labels, asset.labels) && before?.uri === asset.uri) {
      // nothing changed at all: no event
      return {
        seq: 0,
        kind,
        entityId: asset.entityId,
        role: asset.role,
        assetId: asset.id,
        contentHash: asset.contentHash
      }
    }
    assets.set(key, asset)
    const change: Change = Object.freeze({
      seq: feed.length + 1,
      kind,
      entityId: asset.entityId,
      role: asset.role,
      assetId: asset.id,
      contentHash: asset.contentHash
    })
    feed.push(change)
    return change
  }

  for (const entity of init.entities ?? []) putEntitySync(entity)
  for (const asset of init.assets ?? []) {
    const result = putAssetSync(asset)
    if (result instanceof EntityNotFoundError) throw result
  }

  const matches = (entity: Entity, filter: Filter, idSet: Set<string> | undefined) => {
    if (filter.kind !== undefined && entity.kind !== filter.kind) return false
    if (idSet !== undefined && !idSet.has(entity.id)) return false
    if (filter.parentId !== undefined && entity.parentId !== filter.parentId) return false
    if (filter.attribute !== undefined && entity.attributes?.[filter.attribute.key] !== filter.attribute.value) {
      return false
    }
    if (filter.asset !== undefined) {
      const { role, label } = filter.asset
      let found = false
      for (const asset of assets.values()) {
        if (asset.entityId !== entity.id) continue
        if (role !== undefined && asset.role !== role) continue
        if (label !== undefined && asset.labels?.[label.key] !== label.value) continue
        found = true
        break
      }
      if (!found) return false
    }
    return true
  }

  const relatedOf = (id: string, relation: Relation): ReadonlyArray<Entity> => {
    if (relation._tag === "Parent") {
      const parentId = entities.get(id)?.parentId
      const parent = parentId === undefined ? undefined : entities.get(parentId)
      return parent === undefined ? [] : [parent]
    }
    const out: Array<Entity> = []
    for (const child of children.get(id) ?? []) {
      const entity = entities.get(child)!
      if (relation.kind === undefined || entity.kind === relation.kind) out.push(entity)
    }
    return out.sort(byId)
  }

  return {
    list: (filter = {}) =>
      Effect.sync(() => {
        const idSet = filter.ids === undefined ? undefined : new Set(filter.ids)
        const out: Array<Entity> = []
        for (const entity of entities.values()) if (matches(entity, filter, idSet)) out.push(entity)
        return out.sort(byId)
      }),
    getMany: (ids) => Effect.sync(() => ids.map((id) => entities.get(id))),
    related: (ids, relation) => Effect.sync(() => ids.map((id) => relatedOf(id, relation))),
    assets: (ids, role) => Effect.sync(() => ids.map((id) => assets.get(`${id}\u0000${role}`))),
    changes: (after, limit) =>
      Effect.sync(() => feed.slice(Math.max(0, after), Math.max(0, after) + Math.max(0, limit))),
    head: Effect.sync(() => feed.length),
    putEntity: (entity) => Effect.sync(() => putEntitySync(entity)),
    putAsset: (asset) =>
      Effect.suspend(() => {
        const result = putAssetSync(asset)
        return result instanceof EntityNotFoundError ? Effect.fail(result) : Effect.succeed(result)
      })
  }
}
