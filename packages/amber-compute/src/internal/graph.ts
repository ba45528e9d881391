import { Effect, Either, Option } from "effect"
import { FeatureSpec, type FeatureStore, Fingerprint } from "@org/amber-store"
import type * as Algorithm from "../Algorithm.js"
import {
  BlockedError,
  type ComputeFailure,
  ComputeFailedError,
  MissingAssetError,
  MissingEntityError
} from "../ComputeError.js"
import type { Asset, Entity, Service as Source } from "../EntitySource.js"
import * as Mesh from "../Mesh.js"
import type * as Plan from "../Plan.js"

/** One (feature, entity) of the walk. */
export interface Node {
  readonly entity: string
  fp: Fingerprint.Fingerprint | undefined
  /** Why it cannot be computed (found while walking, or while running). */
  failure: ComputeFailure | undefined
  /** Asset inputs by input key. */
  assets: Record<string, Asset> | undefined
  /** Related entity ids by input key (`[entity]` for a feature of the same entity). */
  related: Record<string, ReadonlyArray<string>> | undefined
  /** Whether the value is stored (`undefined`: not looked up). */
  stored: boolean | undefined
  state?: Plan.State
  reason?: string
}

export interface FeatureNodes {
  readonly label: string
  readonly algorithm: Algorithm.Algorithm
  readonly nodes: Map<string, Node>
}

/** The walk of a run: nodes, the entities met, and the values read or computed. */
export interface Graph {
  readonly mesh: Mesh.Mesh<any>
  readonly source: Source
  readonly store: FeatureStore.Service
  readonly entities: Map<string, Entity | null>
  readonly features: Map<string, FeatureNodes>
  /**
   * Values by feature label then entity (only when `keepValues`). Without it (a plan),
   * nodes keep a fingerprint's hashes only, not its inputs.
   */
  readonly values: Map<string, Map<string, unknown>>
  readonly keepValues: boolean
  /** Serializes `expand` (nodes are created before their fingerprints are known). */
  readonly lock: Effect.Semaphore
  /** Fingerprints of earlier walks, reused when their inputs are the same (runs only, not plans). */
  readonly memo: Memo | undefined
}

/** One remembered fingerprint: the inputs it was made from (asset hashes, then related id and fingerprint pairs). */
interface MemoEntry {
  readonly parts: ReadonlyArray<string>
  readonly fp: Fingerprint.Fingerprint
}

/**
 * Fingerprints made by earlier walks of a resolver, by feature label then entity:
 * a walk whose node has the same asset hashes and the same upstream fingerprints
 * takes the remembered fingerprint instead of hashing its canonical inputs again.
 * At most `max` entries (all are dropped when full).
 */
export interface Memo {
  readonly max: number
  size: number
  readonly byLabel: Map<string, { params: string; readonly entries: Map<string, MemoEntry> }>
}

export const makeMemo = (max: number): Memo | undefined => (max > 0 ? { max, size: 0, byLabel: new Map() } : undefined)

export const make = (
  mesh: Mesh.Mesh<any>,
  source: Source,
  store: FeatureStore.Service,
  keepValues: boolean,
  memo?: Memo
): Graph => ({
  mesh,
  source,
  store,
  entities: new Map(),
  features: new Map(),
  values: new Map(),
  keepValues,
  lock: Effect.unsafeMakeSemaphore(1),
  memo
})

const CHUNK = 2000

const inChunks = <A, B, E>(
  items: ReadonlyArray<A>,
  f: (chunk: ReadonlyArray<A>) => Effect.Effect<ReadonlyArray<B>, E>
): Effect.Effect<ReadonlyArray<B>, E> =>
  items.length <= CHUNK
    ? f(items)
    : Effect.map(
        Effect.forEach(
          Array.from({ length: Math.ceil(items.length / CHUNK) }, (_, i) => items.slice(i * CHUNK, (i + 1) * CHUNK)),
          f
        ),
        (parts) => parts.flat()
      )

export const featureNodes = (graph: Graph, label: string): FeatureNodes => {
  let fn = graph.features.get(label)
  if (fn === undefined) {
    fn = { label, algorithm: graph.mesh.byLabel.get(label)!, nodes: new Map() }
    graph.features.set(label, fn)
  }
  return fn
}

const failureFields = (algorithm: Algorithm.Algorithm, entity: string, message: string) => ({
  feature: algorithm.feature.name,
  version: algorithm.feature.version,
  entity,
  message: `${FeatureSpec.label(algorithm.feature)} for ${entity}: ${message}`
})

type DependencyInput = readonly [key: string, input: Exclude<Algorithm.Input, Algorithm.AssetInput>, label: string]

interface InputsOf {
  /** [key, role] of the asset inputs. */
  readonly assetInputs: ReadonlyArray<readonly [key: string, role: string]>
  /** [key, input, feature label] of the feature inputs. */
  readonly deps: ReadonlyArray<DependencyInput>
}

const inputsCache = new WeakMap<Algorithm.Algorithm, InputsOf>()

/** The inputs of an algorithm split by kind (computed once per algorithm). */
const inputsOf = (algorithm: Algorithm.Algorithm): InputsOf => {
  let cached = inputsCache.get(algorithm)
  if (cached === undefined) {
    const assetInputs: Array<readonly [string, string]> = []
    const deps: Array<DependencyInput> = []
    for (const [key, input] of Object.entries(algorithm.inputs)) {
      if (input._tag === "Asset") assetInputs.push([key, input.role])
      else deps.push([key, input, FeatureSpec.label(input.feature)])
    }
    inputsCache.set(algorithm, (cached = { assetInputs, deps }))
  }
  return cached
}

/** The dependency inputs of an algorithm: [key, input, feature label]. */
export const dependencyInputs = (algorithm: Algorithm.Algorithm): ReadonlyArray<DependencyInput> =>
  inputsOf(algorithm).deps

/**
 * Adds the nodes of `label` for `ids` and of everything they read (entities,
 * relations, assets), then computes their fingerprints bottom-up. Known nodes are
 * kept as they are.
 */
export const expand = (graph: Graph, label: string, ids: ReadonlyArray<string>) =>
  graph.lock.withPermits(1)(expandUnlocked(graph, label, ids))

const expandUnlocked = (graph: Graph, label: string, ids: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const labels = [...Mesh.upstreamOf(graph.mesh, label)].reverse() // consumers first
    const demand = new Map<string, Set<string>>([[label, new Set(ids)]])
    const fresh = new Map<string, Array<Node>>()
    for (const l of labels) {
      const want = demand.get(l)
      if (want === undefined) continue
      const fn = featureNodes(graph, l)
      const algorithm = fn.algorithm
      const created: Array<Node> = []
      for (const id of want) {
        if (fn.nodes.has(id)) continue
        const node: Node = {
          entity: id,
          fp: undefined,
          failure: undefined,
          assets: undefined,
          related: undefined,
          stored: undefined
        }
        fn.nodes.set(id, node)
        created.push(node)
      }
      if (created.length === 0) continue
      fresh.set(l, created)
      const unknown: Array<string> = []
      for (const node of created) if (!graph.entities.has(node.entity)) unknown.push(node.entity)
      if (unknown.length > 0) {
        const found = yield* inChunks(unknown, graph.source.getMany)
        unknown.forEach((id, i) => graph.entities.set(id, found[i] ?? null))
      }
      for (const node of created) {
        const entity = graph.entities.get(node.entity)
        if (entity == null) {
          node.failure = new MissingEntityError(
            failureFields(algorithm, node.entity, "the entity is not in the source")
          )
        } else if (entity.kind !== algorithm.feature.entity) {
          node.failure = new MissingEntityError(
            failureFields(
              algorithm,
              node.entity,
              `the entity is a ${entity.kind}, the feature describes ${algorithm.feature.entity} entities`
            )
          )
        }
      }
      for (const [key, input] of Object.entries(algorithm.inputs)) {
        const ok = created.filter((n) => n.failure === undefined)
        if (ok.length === 0) break
        const okIds = ok.map((n) => n.entity)
        if (input._tag === "Asset") {
          const assets = yield* inChunks(okIds, (chunk) => graph.source.assets(chunk, input.role))
          ok.forEach((node, i) => {
            const asset = assets[i]
            if (asset === undefined) {
              node.failure = new MissingAssetError({
                ...failureFields(algorithm, node.entity, `no asset in role ${input.role}`),
                role: input.role
              })
            } else (node.assets ??= {})[key] = asset
          })
          continue
        }
        const depLabel = FeatureSpec.label(input.feature)
        let want = demand.get(depLabel)
        if (want === undefined) demand.set(depLabel, (want = new Set()))
        if (input._tag === "Feature") {
          for (const node of ok) {
            ;(node.related ??= {})[key] = [node.entity]
            want.add(node.entity)
          }
          continue
        }
        const related = yield* inChunks(okIds, (chunk) =>
          graph.source.related(
            chunk,
            input._tag === "Children" ? { _tag: "Children", kind: input.feature.entity } : { _tag: "Parent" }
          )
        )
        ok.forEach((node, i) => {
          const list = related[i] ?? []
          for (const e of list) if (!graph.entities.has(e.id)) graph.entities.set(e.id, e)
          if (input._tag === "Parent") {
            const parent = list[0]
            if (parent === undefined || parent.kind !== input.feature.entity) {
              node.failure = new MissingEntityError(
                failureFields(
                  algorithm,
                  node.entity,
                  parent === undefined
                    ? `input ${key}: the entity has no parent`
                    : `input ${key}: the parent ${parent.id} is a ${parent.kind}, not a ${input.feature.entity}`
                )
              )
              return
            }
          }
          const relatedIds = list.filter((e) => e.kind === input.feature.entity).map((e) => e.id)
          ;(node.related ??= {})[key] = relatedIds
          for (const id of relatedIds) want!.add(id)
        })
      }
    }
    // fingerprints, producers first
    for (let i = labels.length - 1; i >= 0; i--) {
      const l = labels[i]!
      const created = fresh.get(l)
      if (created === undefined) continue
      const algorithm = graph.mesh.byLabel.get(l)!
      const { assetInputs, deps } = inputsOf(algorithm)
      const depNodes = deps.map(([, , depLabel]) => graph.features.get(depLabel)!.nodes)
      const params = algorithm.params
      const memo = graph.memo === undefined || !graph.keepValues ? undefined : memoOf(graph.memo, l, params)
      for (const node of created) {
        if (node.failure !== undefined) continue
        if (memo !== undefined) {
          const known = memo.get(node.entity)
          if (known !== undefined && sameInputs(known.parts, node, assetInputs, deps, depNodes)) {
            node.fp = known.fp
            continue
          }
        }
        const assets: Record<string, string> = {}
        for (const [key, role] of assetInputs) assets[role] = node.assets![key]!.contentHash
        const upstream: Array<Fingerprint.Upstream> = []
        let blocked: ComputeFailure | undefined
        for (let d = 0; d < deps.length && blocked === undefined; d++) {
          const [key, input] = deps[d]!
          const nodes = depNodes[d]!
          for (const id of node.related![key]!) {
            const dep = nodes.get(id)!
            if (dep.failure !== undefined || dep.fp === undefined) {
              blocked = blockedBy(algorithm, node.entity, input.feature, id, dep.failure)
              break
            }
            upstream.push({
              feature: input.feature.name,
              version: input.feature.version,
              entity: id,
              fingerprint: dep.fp.hash
            })
          }
        }
        if (blocked) {
          node.failure = blocked
          continue
        }
        const fp = Fingerprint.either({ assets, upstream, params })
        if (Either.isLeft(fp)) {
          node.failure = new ComputeFailedError(
            failureFields(algorithm, node.entity, `cannot fingerprint the inputs: ${fp.left.message}`)
          )
        } else if (graph.keepValues) {
          node.fp = fp.right
          if (memo !== undefined) remember(graph.memo!, memo, node, fp.right, assets, assetInputs, upstream)
        } else {
          // a plan keeps only what identifies the value (the full fingerprint, with its
          // canonical inputs, is garbage before it leaves the young generation)
          node.fp = { _tag: "Fingerprint", hash: fp.right.hash, params: fp.right.params } as Fingerprint.Fingerprint
          node.assets = undefined
        }
      }
    }
  })

/** The entries of a label in the memo, emptied when the algorithm's parameters changed since. */
const memoOf = (memo: Memo, label: string, params: unknown): Map<string, MemoEntry> => {
  const text = JSON.stringify(params)
  let m = memo.byLabel.get(label)
  if (m === undefined) memo.byLabel.set(label, (m = { params: text, entries: new Map() }))
  else if (m.params !== text) {
    memo.size -= m.entries.size
    m.entries.clear()
    m.params = text
  }
  return m.entries
}

/** Whether a node's inputs are those a remembered fingerprint was made from. */
const sameInputs = (
  parts: ReadonlyArray<string>,
  node: Node,
  assetInputs: InputsOf["assetInputs"],
  deps: InputsOf["deps"],
  depNodes: ReadonlyArray<Map<string, Node>>
): boolean => {
  let k = 0
  for (const [key] of assetInputs) if (parts[k++] !== node.assets![key]!.contentHash) return false
  for (let d = 0; d < deps.length; d++) {
    const nodes = depNodes[d]!
    for (const id of node.related![deps[d]![0]]!) {
      const dep = nodes.get(id)
      if (dep === undefined || dep.failure !== undefined || dep.fp === undefined) return false
      if (parts[k++] !== id || parts[k++] !== dep.fp.hash) return false
    }
  }
  return k === parts.length
}

const remember = (
  memo: Memo,
  entries: Map<string, MemoEntry>,
  node: Node,
  fp: Fingerprint.Fingerprint,
  assets: Record<string, string>,
  assetInputs: InputsOf["assetInputs"],
  upstream: ReadonlyArray<Fingerprint.Upstream>
) => {
  if (memo.size >= memo.max) {
    for (const m of memo.byLabel.values()) m.entries.clear()
    memo.size = 0
  }
  const parts: Array<string> = []
  for (const [, role] of assetInputs) parts.push(assets[role]!)
  for (const u of upstream) parts.push(u.entity, u.fingerprint)
  if (!entries.has(node.entity)) memo.size++
  entries.set(node.entity, { parts, fp })
}

export const blockedBy = (
  algorithm: Algorithm.Algorithm,
  entity: string,
  dep: FeatureSpec.FeatureSpec<any>,
  depEntity: string,
  failure: ComputeFailure | undefined
) =>
  new BlockedError({
    ...failureFields(
      algorithm,
      entity,
      `blocked by ${FeatureSpec.label(dep)} for ${depEntity}${failure ? `: ${failure.message}` : ""}`
    ),
    dependency: { feature: dep.name, version: dep.version, entity: depEntity }
  })

/** Looks up nodes in the store (one batched read per call), recording `stored` and keeping values. */
export const lookup = (graph: Graph, label: string, nodes: ReadonlyArray<Node>) =>
  Effect.gen(function* () {
    const todo = nodes.filter((n) => n.stored === undefined && n.fp !== undefined && n.failure === undefined)
    if (todo.length === 0) return
    const spec = graph.mesh.byLabel.get(label)!.feature
    const found = yield* graph.store.getMany(
      spec,
      todo.map((n) => ({ entity: n.entity, fingerprint: n.fp! }))
    )
    let values = graph.values.get(label)
    if (values === undefined && graph.keepValues) graph.values.set(label, (values = new Map()))
    todo.forEach((node, i) => {
      const value = found[i]!
      node.stored = Option.isSome(value)
      if (node.stored && values !== undefined) values.set(node.entity, (value as Option.Some<unknown>).value)
    })
  })

/**
 * Looks up what `label` for `ids` needs: the nodes themselves, and (with `prune`)
 * the inputs of the missing ones only, down the mesh; without `prune`, every input.
 * Returns the nodes looked at, by feature label.
 */
export const check = (graph: Graph, label: string, ids: ReadonlyArray<string>, prune: boolean) =>
  Effect.gen(function* () {
    const labels = [...Mesh.upstreamOf(graph.mesh, label)].reverse() // consumers first
    const needed = new Map<string, Set<string>>([[label, new Set(ids)]])
    for (const l of labels) {
      const want = needed.get(l)
      if (want === undefined) continue
      const fn = graph.features.get(l)!
      const nodes = [...want].map((id) => fn.nodes.get(id)!)
      yield* lookup(graph, l, nodes)
      for (const [key, , depLabel] of dependencyInputs(fn.algorithm)) {
        let set = needed.get(depLabel)
        for (const node of nodes) {
          // the inputs of a blocked value are looked at too: they show where it is blocked
          const related = node.related?.[key]
          if (related === undefined || (prune && node.stored)) continue
          if (set === undefined) needed.set(depLabel, (set = new Set()))
          for (const id of related) set.add(id)
        }
      }
    }
    return needed
  })

/** What the store holds of a feature for an entity, other than the current key. */
export interface Held {
  sameVersion: boolean
  older: number | undefined
}

/** Looks up what the store holds of a feature for entities (for stale states). */
export type Lineage = (
  spec: FeatureSpec.FeatureSpec<any>,
  entities: ReadonlyArray<string>
) => Effect.Effect<ReadonlyMap<string, Held>, FeatureStore.ReadError>

const heldOf = (
  spec: FeatureSpec.FeatureSpec<any>,
  rows: ReadonlyArray<FeatureStore.Lineage>,
  into: Map<string, Held>
) => {
  for (const row of rows) {
    let e = into.get(row.entity)
    if (e === undefined) into.set(row.entity, (e = { sameVersion: false, older: undefined }))
    if (row.version === spec.version) e.sameVersion = true
    else if (row.version < spec.version) e.older = Math.max(e.older ?? 0, row.version)
  }
}

/** Up to this many entities, a plan looks their lineage up one by one. */
const LINEAGE_ONE_BY_ONE = 1000

/**
 * A lineage lookup for one plan of `planned` entities: a few entities are looked up
 * one by one; a plan of many reads each feature's whole lineage once (kept for the
 * rest of the plan), whatever the size of the chunk asked about: a plan of 100,000
 * entities in chunks of 1,000 would otherwise make 100,000 queries per feature.
 */
export const lineageLookup = (store: FeatureStore.Service, planned: number): Lineage => {
  const whole = new Map<string, Map<string, Held>>()
  const none = () => Effect.succeed([] as ReadonlyArray<FeatureStore.Lineage>)
  return (spec, entities) =>
    Effect.gen(function* () {
      const known = whole.get(spec.name)
      if (known !== undefined) return known
      if (entities.length > LINEAGE_ONE_BY_ONE || planned > LINEAGE_ONE_BY_ONE) {
        const all = new Map<string, Held>()
        heldOf(spec, yield* store.list({ feature: spec.name }).pipe(Effect.catchTag("UnknownFeatureError", none)), all)
        whole.set(spec.name, all)
        return all
      }
      const out = new Map<string, Held>()
      const rows = yield* Effect.forEach(
        entities,
        (entity) => store.list({ feature: spec.name, entity }).pipe(Effect.catchTag("UnknownFeatureError", none)),
        { concurrency: 4 }
      )
      for (const r of rows) heldOf(spec, r, out)
      return out
    })
}

/**
 * The features in `label`'s inputs (and itself) that describe the same entities as
 * `label` for a given set of them: reached from it through same-entity feature inputs
 * only, never through a relation.
 */
export const sameEntityLabels = (mesh: Mesh.Mesh<any>, label: string): ReadonlySet<string> => {
  const labels = [...Mesh.upstreamOf(mesh, label)].reverse() // consumers first
  const reached = new Set<string>([label])
  const viaRelation = new Set<string>()
  for (const l of labels) {
    if (!reached.has(l)) continue
    const own = !viaRelation.has(l)
    for (const [, input, depLabel] of dependencyInputs(mesh.byLabel.get(l)!)) {
      reached.add(depLabel)
      if (!own || input._tag !== "Feature") viaRelation.add(depLabel)
    }
  }
  return new Set([...reached].filter((l) => !viaRelation.has(l)))
}

/** Sets the state of nodes; with a lineage lookup, missing ones that have other values stored are stale. */
export const classify = (
  graph: Graph,
  label: string,
  nodes: ReadonlyArray<Node>,
  lineage: Lineage | undefined
): Effect.Effect<void, FeatureStore.ReadError> =>
  Effect.gen(function* () {
    for (const node of nodes) {
      if (node.failure !== undefined) {
        node.state = "blocked"
        node.reason = node.failure.message
      } else node.state = node.stored ? "stored" : "missing"
    }
    const missing = nodes.filter((n) => n.state === "missing")
    if (missing.length === 0 || lineage === undefined) return
    const spec = graph.mesh.byLabel.get(label)!.feature
    const held = yield* lineage(
      spec,
      missing.map((n) => n.entity)
    )
    if (held.size === 0) return
    for (const node of missing) {
      const e = held.get(node.entity)
      if (e === undefined) continue
      if (e.sameVersion) {
        node.state = "stale-input"
        node.reason = "a value for other inputs is stored"
      } else if (e.older !== undefined) {
        node.state = "stale-version"
        node.reason = `version ${e.older} is stored`
      }
    }
  })
