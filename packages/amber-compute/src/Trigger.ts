/**
 * Triggers follow the entity source's change feed from a durable cursor (one per
 * trigger name, kept in the database) and materialize the configured features for
 * every added or changed asset and its dependents: the entity itself, its
 * ancestors (a new artwork changes its title's set embedding) and its
 * descendants. The cursor advances only after the changes are processed, so after
 * a crash a change is processed again (memoization makes that free), never skipped.
 *
 * @since 0.1.0
 */
import { Effect, Schedule } from "effect"
import { FeatureSpec } from "@org/amber-store"
import { ComputeConfigError } from "./ComputeError.js"
import { EntitySource, type Filter, type Service as Source } from "./EntitySource.js"
import * as Mesh from "./Mesh.js"
import { type ResolveError, Resolver, type RunResult } from "./Resolver.js"

/**
 * Options of a trigger.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The cursor's name: `[A-Za-z0-9_.:/-]`, 1 to 200 characters. */
  readonly name: string
  /** The features to keep materialized. */
  readonly features: ReadonlyArray<string | FeatureSpec.FeatureSpec<any>>
  /** Most changes per step (default 100). */
  readonly batchSize?: number
  /** Pause between two looks at the feed when caught up, in milliseconds (default 1000). */
  readonly pollMs?: number
  /** Runs after a step's changes are processed, before the cursor moves (a hook for acknowledgements). */
  readonly beforeCommit?: (step: Step) => Effect.Effect<void>
}

/**
 * What one step of a trigger did.
 *
 * @since 0.1.0
 * @category models
 */
export interface Step {
  readonly trigger: string
  /** The cursor before and after. */
  readonly from: number
  readonly to: number
  readonly changes: number
  /** Entities whose features were materialized. */
  readonly entities: ReadonlyArray<string>
  readonly runs: ReadonlyArray<RunResult>
}

/**
 * A trigger.
 *
 * @since 0.1.0
 * @category models
 */
export interface Trigger {
  readonly name: string
  /** Processes the next batch of changes and moves the cursor (a step with no changes when caught up). */
  readonly step: Effect.Effect<Step, ResolveError>
  /** Steps until the feed's head. */
  readonly catchUp: Effect.Effect<ReadonlyArray<Step>, ResolveError>
  /** Follows the feed forever. */
  readonly run: Effect.Effect<never, ResolveError>
}

const related = (source: Source, id: string) =>
  Effect.gen(function* () {
    const out = new Set<string>([id])
    let frontier = [id]
    // ancestors
    for (let depth = 0; depth < 16 && frontier.length > 0; depth++) {
      const parents = yield* source.related(frontier, { _tag: "Parent" })
      frontier = parents
        .flat()
        .map((e) => e.id)
        .filter((p) => !out.has(p))
      for (const p of frontier) out.add(p)
    }
    // descendants
    frontier = [id]
    for (let depth = 0; depth < 16 && frontier.length > 0; depth++) {
      const children = yield* source.related(frontier, { _tag: "Children" })
      frontier = children
        .flat()
        .map((e) => e.id)
        .filter((c) => !out.has(c))
      for (const c of frontier) out.add(c)
    }
    return out
  })

/**
 * Builds a trigger on the resolver and entity source in context.
 *
 * @example
 * ```ts
 * const trigger = yield* Trigger.make({ name: "titles", features: [TitleSet] })
 * yield* trigger.catchUp
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Trigger, ComputeConfigError, Resolver | EntitySource> =>
  Effect.gen(function* () {
    const resolver = yield* Resolver
    const source = yield* EntitySource
    if (typeof options.name !== "string" || !/^[A-Za-z0-9_.:/-]{1,200}$/.test(options.name)) {
      return yield* new ComputeConfigError({
        option: "name",
        message: `Trigger: name must be 1 to 200 of [A-Za-z0-9_.:/-], got ${JSON.stringify(options.name)}`
      })
    }
    const batchSize = options.batchSize ?? 100
    const pollMs = options.pollMs ?? 1000
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      return yield* new ComputeConfigError({
        option: "batchSize",
        message: "Trigger: batchSize must be a positive integer"
      })
    }
    const algorithms = yield* Effect.forEach(options.features, (f) => Mesh.algorithm(resolver.mesh, f)).pipe(
      Effect.mapError(
        (e) => new ComputeConfigError({ option: "features", message: `Trigger ${options.name}: ${e.message}` })
      )
    )
    const name = `trigger:${options.name}`
    const step: Trigger["step"] = Effect.gen(function* () {
      const from = yield* resolver.cursor(name)
      const changes = yield* source.changes(from, batchSize)
      if (changes.length === 0) {
        return { trigger: options.name, from, to: from, changes: 0, entities: [], runs: [] }
      }
      const affected = new Set<string>()
      for (const change of changes) {
        // a metadata-only change leaves every fingerprint as it is
        if (change.kind === "metadata") continue
        for (const id of yield* related(source, change.entityId)) affected.add(id)
      }
      const ids = [...affected].sort()
      const entities = ids.length === 0 ? [] : yield* source.getMany(ids)
      const runs: Array<RunResult> = []
      for (const algorithm of algorithms) {
        const mine = entities.filter((e) => e?.kind === algorithm.feature.entity).map((e) => e!.id)
        if (mine.length > 0) runs.push(yield* resolver.materialize(FeatureSpec.label(algorithm.feature), mine))
      }
      const to = changes.at(-1)!.seq
      const result: Step = { trigger: options.name, from, to, changes: changes.length, entities: ids, runs }
      if (options.beforeCommit) yield* options.beforeCommit(result)
      yield* resolver.setCursor(name, to)
      return result
    })
    const catchUp: Trigger["catchUp"] = Effect.gen(function* () {
      const steps: Array<Step> = []
      while (true) {
        const s = yield* step
        if (s.changes === 0) return steps
        steps.push(s)
      }
    })
    return {
      name: options.name,
      step,
      catchUp,
      run: catchUp.pipe(Effect.repeat(Schedule.spaced(pollMs)), Effect.zipRight(Effect.never))
    }
  })

/**
 * Materializes features for every entity of their kind that matches a filter.
 *
 * @since 0.1.0
 * @category constructors
 */
export const backfill = (
  features: ReadonlyArray<string | FeatureSpec.FeatureSpec<any>>,
  filter: Filter = {}
): Effect.Effect<ReadonlyArray<RunResult>, ResolveError, Resolver | EntitySource> =>
  Effect.gen(function* () {
    const resolver = yield* Resolver
    const source = yield* EntitySource
    const runs: Array<RunResult> = []
    for (const feature of features) {
      const algorithm = yield* Mesh.algorithm(resolver.mesh, feature)
      const entities = yield* source.list({ ...filter, kind: algorithm.feature.entity })
      runs.push(
        yield* resolver.materialize(
          FeatureSpec.label(algorithm.feature),
          entities.map((e) => e.id)
        )
      )
    }
    return runs
  })
