/**
 * Algorithms: a feature with the function that computes it and typed inputs (an
 * asset of the entity by role, another feature of the same entity, features of
 * related entities through the catalog's relations), optional parameters (part of
 * the fingerprint), batching, a concurrency limit and a timeout.
 *
 * @since 0.1.0
 */
import { Duration, Either, ParseResult, Schema } from "effect"
import type { Effect } from "effect"
import { FeatureSpec } from "@org/amber-store"
import type { Fingerprint } from "@org/amber-store"
import { ComputeConfigError } from "./ComputeError.js"
import type { Asset, Entity } from "./EntitySource.js"

/**
 * The entity's latest asset in a role; its content hash enters the fingerprint.
 *
 * @since 0.1.0
 * @category models
 */
export interface AssetInput {
  readonly _tag: "Asset"
  readonly role: string
}

/**
 * Another feature of the same entity.
 *
 * @since 0.1.0
 * @category models
 */
export interface FeatureInput<A> {
  readonly _tag: "Feature"
  readonly feature: FeatureSpec.FeatureSpec<A>
}

/**
 * A feature of every child of the entity whose kind is the feature's entity kind, in id order.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChildrenInput<A> {
  readonly _tag: "Children"
  readonly feature: FeatureSpec.FeatureSpec<A>
}

/**
 * A feature of the entity's parent (the parent must exist and be of the feature's entity kind).
 *
 * @since 0.1.0
 * @category models
 */
export interface ParentInput<A> {
  readonly _tag: "Parent"
  readonly feature: FeatureSpec.FeatureSpec<A>
}

/**
 * Any input of an algorithm.
 *
 * @since 0.1.0
 * @category models
 */
export type Input = AssetInput | FeatureInput<any> | ChildrenInput<any> | ParentInput<any>

/**
 * A related entity with its feature value.
 *
 * @since 0.1.0
 * @category models
 */
export interface Related<A> {
  readonly entity: Entity
  readonly value: A
}

/**
 * What the compute function receives for an input.
 *
 * @since 0.1.0
 * @category models
 */
export type InputValue<I> = I extends AssetInput
  ? Asset
  : I extends FeatureInput<infer A>
    ? A
    : I extends ChildrenInput<infer A>
      ? ReadonlyArray<Related<A>>
      : I extends ParentInput<infer A>
        ? Related<A>
        : never

/**
 * Named inputs of an algorithm.
 *
 * @since 0.1.0
 * @category models
 */
export type Inputs = Readonly<Record<string, Input>>

/**
 * What a compute function gets for one entity.
 *
 * @since 0.1.0
 * @category models
 */
export interface ComputeInput<I extends Inputs, P> {
  readonly entity: Entity
  readonly inputs: { readonly [K in keyof I]: InputValue<I[K]> }
  readonly params: P
}

/**
 * A compute function run in a worker thread: `module` is a path or URL of an ES
 * module whose export `export` (default `"default"`) takes the `ComputeInput` and
 * returns the value (or a promise of it). Inputs and values must be structured-cloneable.
 *
 * @since 0.1.0
 * @category models
 */
export interface Thread {
  readonly module: string
  readonly export?: string | undefined
}

/**
 * An algorithm: produces `feature` from its inputs.
 *
 * @since 0.1.0
 * @category models
 */
export interface Algorithm<A = any, R = any> {
  readonly _tag: "Algorithm"
  /** The algorithm's name (default: the feature's name). */
  readonly name: string
  /** `name@version`: recorded as the producer of every value. */
  readonly producer: string
  readonly feature: FeatureSpec.FeatureSpec<A>
  readonly inputs: Inputs
  readonly params: Fingerprint.Json
  readonly compute: ((input: ComputeInput<any, any>) => Effect.Effect<A, unknown, R>) | undefined
  readonly computeBatch:
    | ((inputs: ReadonlyArray<ComputeInput<any, any>>) => Effect.Effect<ReadonlyArray<A>, unknown, R>)
    | undefined
  readonly thread: Thread | undefined
  /** Most entities per `computeBatch` call (and per task). */
  readonly batchSize: number
  /** Most computations of this algorithm at once in one process. */
  readonly concurrency: number
  /** Per computation (per batch with `computeBatch`); `undefined`: none. */
  readonly timeoutMs: number | undefined
}

/**
 * The options of {@link make} that are plain data (checked by a schema).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Options = Schema.Struct({
  name: Schema.optional(Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_.:/-]{1,200}$/))),
  batchSize: Schema.optional(Schema.Int.pipe(Schema.between(1, 100_000))),
  concurrency: Schema.optional(Schema.Int.pipe(Schema.between(1, 10_000)))
})

const fail = (option: string, message: string): never => {
  throw new ComputeConfigError({ option, message })
}

/**
 * Defines an algorithm. Throws a `ComputeConfigError` for malformed options (a
 * definition-time mistake): no compute function, a bad batch size, concurrency,
 * timeout, input or parameters.
 *
 * @example
 * ```ts
 * const Color = Algorithm.make({
 *   feature: ColorSpec,
 *   inputs: { image: Algorithm.asset("image") },
 *   params: { bins: 8 },
 *   compute: ({ inputs, params }) => Effect.succeed(histogram(inputs.image, params.bins))
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <A, const I extends Inputs, const P extends Fingerprint.Json = null, R = never>(options: {
  readonly feature: FeatureSpec.FeatureSpec<A>
  readonly inputs: I
  readonly name?: string
  readonly params?: P
  readonly compute?: (input: ComputeInput<I, P>) => Effect.Effect<A, unknown, R>
  readonly computeBatch?: (inputs: ReadonlyArray<ComputeInput<I, P>>) => Effect.Effect<ReadonlyArray<A>, unknown, R>
  readonly thread?: Thread
  readonly batchSize?: number
  readonly concurrency?: number
  readonly timeout?: Duration.DurationInput
}): Algorithm<A, R> => {
  const feature = options.feature
  if (typeof feature !== "object" || feature === null || feature._tag !== "FeatureSpec") {
    fail("feature", "Algorithm.make: `feature` must be a FeatureSpec")
  }
  const label = FeatureSpec.label(feature)
  const decoded = Schema.decodeUnknownEither(Options)({
    name: options.name,
    batchSize: options.batchSize,
    concurrency: options.concurrency
  })
  if (Either.isLeft(decoded)) {
    const issue = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)[0]
    const option = issue?.path.map(String).join(".") || "options"
    fail(option, `algorithm ${label}: ${option}: ${issue?.message ?? "invalid"}`)
  }
  const { name = feature.name, batchSize = 100, concurrency = 8 } = Either.getOrThrow(decoded)
  const kinds = [options.compute, options.computeBatch, options.thread].filter((x) => x !== undefined).length
  if (kinds !== 1) {
    fail("compute", `algorithm ${label}: give exactly one of compute, computeBatch or thread`)
  }
  if (options.thread !== undefined && (typeof options.thread.module !== "string" || options.thread.module === "")) {
    fail("thread.module", `algorithm ${label}: thread.module must be a module path or URL`)
  }
  let timeoutMs: number | undefined
  if (options.timeout !== undefined) {
    const d = Duration.decodeUnknown(options.timeout)
    if (d._tag === "None" || !Duration.isFinite(d.value) || Duration.toMillis(d.value) <= 0) {
      fail("timeout", `algorithm ${label}: timeout must be a positive, finite duration`)
    }
    timeoutMs = Math.ceil(Duration.toMillis(Duration.decode(options.timeout)))
  }
  const inputs: Record<string, Input> = {}
  for (const [key, input] of Object.entries(options.inputs ?? {})) {
    const where = `inputs.${key}`
    if (typeof input !== "object" || input === null) fail(where, `algorithm ${label}: ${where} must be an input`)
    if (input._tag === "Asset") {
      if (typeof input.role !== "string" || input.role === "") {
        fail(where, `algorithm ${label}: ${where} needs a role`)
      }
    } else if (input._tag === "Feature" || input._tag === "Children" || input._tag === "Parent") {
      if (input.feature?._tag !== "FeatureSpec") fail(where, `algorithm ${label}: ${where} needs a FeatureSpec`)
      if (input._tag === "Feature" && input.feature.entity !== feature.entity) {
        fail(
          where,
          `algorithm ${label}: ${where} reads ${FeatureSpec.label(input.feature)} of entity kind ${input.feature.entity}, ` +
            `not ${feature.entity}; use Algorithm.children or Algorithm.parent for related entities`
        )
      }
    } else fail(where, `algorithm ${label}: ${where} is not an input`)
    inputs[key] = Object.freeze({ ...input })
  }
  const params = (options.params ?? null) as Fingerprint.Json
  try {
    JSON.stringify(params)
  } catch (e) {
    fail("params", `algorithm ${label}: params must be JSON: ${(e as Error).message}`)
  }
  return Object.freeze({
    _tag: "Algorithm" as const,
    name,
    producer: `${name}@${feature.version}`,
    feature,
    inputs: Object.freeze(inputs),
    params,
    compute: options.compute as Algorithm<A, R>["compute"],
    computeBatch: options.computeBatch as Algorithm<A, R>["computeBatch"],
    thread: options.thread,
    batchSize,
    concurrency,
    timeoutMs
  })
}

/**
 * An asset of the entity by role.
 *
 * @since 0.1.0
 * @category inputs
 */
export const asset = (role: string): AssetInput => ({ _tag: "Asset", role })

/**
 * Another feature of the same entity.
 *
 * @since 0.1.0
 * @category inputs
 */
export const feature = <A>(spec: FeatureSpec.FeatureSpec<A>): FeatureInput<A> => ({ _tag: "Feature", feature: spec })

/**
 * A feature of every child (of the feature's entity kind), in id order.
 *
 * @since 0.1.0
 * @category inputs
 */
export const children = <A>(spec: FeatureSpec.FeatureSpec<A>): ChildrenInput<A> => ({
  _tag: "Children",
  feature: spec
})

/**
 * A feature of the parent entity.
 *
 * @since 0.1.0
 * @category inputs
 */
export const parent = <A>(spec: FeatureSpec.FeatureSpec<A>): ParentInput<A> => ({ _tag: "Parent", feature: spec })
