/**
 * The mesh: a set of algorithms validated together. `make` refuses a cycle (with
 * its path), an input feature nothing produces, two producers of one feature
 * version and an input whose declared spec differs from what its producer makes.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { FeatureSpec } from "@org/amber-store"
import type * as Algorithm from "./Algorithm.js"
import {
  MeshCycleError,
  MeshDuplicateProducerError,
  type MeshError,
  MeshInputMismatchError,
  MeshUnknownInputError,
  UnknownFeatureError
} from "./ComputeError.js"

/**
 * A validated mesh; `R` is what its compute functions need.
 *
 * @since 0.1.0
 * @category models
 */
export interface Mesh<R = never> {
  readonly _tag: "Mesh"
  readonly algorithms: ReadonlyArray<Algorithm.Algorithm<any, R>>
  /** By feature label (`name@version`). */
  readonly byLabel: ReadonlyMap<string, Algorithm.Algorithm<any, R>>
  /** Feature labels, producers before consumers. */
  readonly order: ReadonlyArray<string>
  /** The depth of each feature: 0 for features that read only assets. */
  readonly levels: ReadonlyMap<string, number>
}

/**
 * What the algorithms of a list need.
 *
 * @since 0.1.0
 * @category models
 */
export type Requirements<T> =
  T extends ReadonlyArray<infer X> ? (X extends Algorithm.Algorithm<any, infer R> ? NoAny<R> : never) : never

/** `any` (an algorithm whose requirements could not be inferred, such as a thread) as `never`. */
type NoAny<R> = 0 extends 1 & R ? never : R

const dependencies = (algorithm: Algorithm.Algorithm): ReadonlyArray<FeatureSpec.FeatureSpec<any>> =>
  Object.values(algorithm.inputs).flatMap((input) => (input._tag === "Asset" ? [] : [input.feature]))

const sameDefinition = (a: FeatureSpec.Definition, b: FeatureSpec.Definition) =>
  a.entity === b.entity && a.kind === b.kind && a.dimension === b.dimension && a.schema === b.schema

const describe = (d: FeatureSpec.Definition) =>
  `entity ${d.entity}, ${d.kind}${d.dimension === null ? "" : ` of dimension ${d.dimension}`}, schema ${d.schema}`

/**
 * Validates algorithms into a mesh; nothing runs on a mesh that fails.
 *
 * @example
 * ```ts
 * const mesh = yield* Mesh.make([Tensor, Color, TitleSet])
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <const T extends ReadonlyArray<Algorithm.Algorithm<any, any>>>(
  algorithms: T
): Effect.Effect<Mesh<Requirements<T>>, MeshError> =>
  Effect.suspend((): Effect.Effect<Mesh<Requirements<T>>, MeshError> => {
    const byLabel = new Map<string, Algorithm.Algorithm<any, any>>()
    for (const algorithm of algorithms) {
      const label = FeatureSpec.label(algorithm.feature)
      const other = byLabel.get(label)
      if (other !== undefined) {
        return Effect.fail(
          new MeshDuplicateProducerError({
            feature: label,
            algorithms: [other.name, algorithm.name],
            message: `feature ${label} is produced by two algorithms: ${other.name} and ${algorithm.name}`
          })
        )
      }
      byLabel.set(label, algorithm)
    }
    for (const algorithm of algorithms) {
      const label = FeatureSpec.label(algorithm.feature)
      for (const [key, input] of Object.entries(algorithm.inputs)) {
        if (input._tag === "Asset") continue
        const inputLabel = FeatureSpec.label(input.feature)
        const producer = byLabel.get(inputLabel)
        if (producer === undefined) {
          const versions = algorithms
            .filter((a) => a.feature.name === input.feature.name)
            .map((a) => FeatureSpec.label(a.feature))
          return Effect.fail(
            new MeshUnknownInputError({
              feature: label,
              input: inputLabel,
              message: `${label}: input ${key} reads ${inputLabel}, which no algorithm of the mesh produces${
                versions.length > 0 ? ` (produced: ${versions.join(", ")})` : ""
              }`
            })
          )
        }
        if (!sameDefinition(producer.feature, input.feature)) {
          return Effect.fail(
            new MeshInputMismatchError({
              feature: label,
              input: inputLabel,
              message: `${label}: input ${key} declares ${inputLabel} as ${describe(input.feature)}, but ${
                producer.name
              } produces ${describe(producer.feature)}`
            })
          )
        }
      }
    }
    // depth-first search for a cycle, in a deterministic order
    const state = new Map<string, "visiting" | "done">()
    const order: Array<string> = []
    const levels = new Map<string, number>()
    const stack: Array<string> = []
    const visit = (label: string): MeshCycleError | undefined => {
      const s = state.get(label)
      if (s === "done") return undefined
      if (s === "visiting") {
        const path = [...stack.slice(stack.indexOf(label)), label]
        return new MeshCycleError({ path, message: `the mesh has a cycle: ${path.join(" -> ")}` })
      }
      state.set(label, "visiting")
      stack.push(label)
      let level = 0
      for (const dep of dependencies(byLabel.get(label)!)) {
        const depLabel = FeatureSpec.label(dep)
        const cycle = visit(depLabel)
        if (cycle) return cycle
        level = Math.max(level, levels.get(depLabel)! + 1)
      }
      stack.pop()
      state.set(label, "done")
      levels.set(label, level)
      order.push(label)
      return undefined
    }
    for (const label of [...byLabel.keys()].sort()) {
      const cycle = visit(label)
      if (cycle) return Effect.fail(cycle)
    }
    return Effect.succeed(
      Object.freeze({ _tag: "Mesh" as const, algorithms: [...algorithms], byLabel, order, levels }) as Mesh<
        Requirements<T>
      >
    )
  })

/**
 * The algorithm producing a feature (a spec, `name@version`, or a name when one version is produced).
 *
 * @since 0.1.0
 * @category utils
 */
export const algorithm = <R>(
  mesh: Mesh<R>,
  feature: string | FeatureSpec.FeatureSpec<any>
): Effect.Effect<Algorithm.Algorithm<any, R>, UnknownFeatureError> => {
  if (typeof feature !== "string") {
    const found = mesh.byLabel.get(FeatureSpec.label(feature))
    return found ? Effect.succeed(found) : unknown(mesh, FeatureSpec.label(feature))
  }
  const exact = mesh.byLabel.get(feature)
  if (exact) return Effect.succeed(exact)
  const named = mesh.algorithms.filter((a) => a.feature.name === feature)
  if (named.length === 1) return Effect.succeed(named[0]!)
  return unknown(mesh, feature)
}

const unknown = (mesh: Mesh<any>, feature: string) =>
  Effect.fail(
    new UnknownFeatureError({
      feature,
      message: `no algorithm of the mesh produces ${feature} (produced: ${[...mesh.byLabel.keys()].join(", ")})`
    })
  )

/**
 * The features that `label` reads, directly or not (itself included), producers first.
 *
 * @since 0.1.0
 * @category utils
 */
export const upstreamOf = (mesh: Mesh<any>, label: string): ReadonlyArray<string> => {
  const needed = new Set<string>([label])
  for (let i = mesh.order.length - 1; i >= 0; i--) {
    const l = mesh.order[i]!
    if (!needed.has(l)) continue
    for (const dep of dependencies(mesh.byLabel.get(l)!)) needed.add(FeatureSpec.label(dep))
  }
  return mesh.order.filter((l) => needed.has(l))
}

/**
 * The features that read `label`, directly or not (itself included), producers first.
 *
 * @since 0.1.0
 * @category utils
 */
export const downstreamOf = (mesh: Mesh<any>, label: string): ReadonlyArray<string> => {
  const affected = new Set<string>([label])
  for (const l of mesh.order) {
    if (dependencies(mesh.byLabel.get(l)!).some((d) => affected.has(FeatureSpec.label(d)))) affected.add(l)
  }
  return mesh.order.filter((l) => affected.has(l))
}
