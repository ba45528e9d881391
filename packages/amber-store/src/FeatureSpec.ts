/**
 * Feature specs: the typed description of a feature. A feature has a name, a
 * version, the kind of entity it describes (a string such as `"title"`,
 * `"artwork"` or `"video"`) and a value schema. Embeddings are first-class: a
 * fixed dimension, `Float32Array` values stored as bytes, never JSON.
 *
 * @since 0.1.0
 */
import { Either, ParseResult, Schema } from "effect"
import { FeatureSpecError } from "./StoreError.js"

/**
 * The serialisable part of a spec (what the store records about a feature).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Definition = Schema.Struct({
  /** `[A-Za-z0-9_.:/-]`, 1 to 200 characters: `"artwork.clip_embedding"`. */
  name: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_.:/-]{1,200}$/)),
  /** A positive integer; bump it whenever the computation changes. */
  version: Schema.Int.pipe(Schema.positive()),
  /** The kind of entity the feature describes: `"title"`, `"artwork"`, `"video"`. */
  entity: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_.:/-]{1,100}$/)),
  /** `"json"` values go through their schema to JSON; `"embedding"` values are bytes. */
  kind: Schema.Literal("json", "embedding"),
  /** The dimension of an embedding. */
  dimension: Schema.NullOr(Schema.Int.pipe(Schema.positive(), Schema.lessThanOrEqualTo(1 << 20))),
  /** A description of the value schema, to detect a changed schema without a version bump. */
  schema: Schema.String
})

/**
 * @since 0.1.0
 * @category models
 */
export type Definition = Schema.Schema.Type<typeof Definition>

/**
 * A feature: its definition plus the value schema (`A` is the value type).
 *
 * @since 0.1.0
 * @category models
 */
export interface FeatureSpec<A> extends Definition {
  readonly _tag: "FeatureSpec"
  /** The value schema; its encoded side must be JSON for `"json"` features. */
  readonly value: Schema.Schema<A, any, never>
}

/**
 * The schema of an embedding of `dimension` components: a `Float32Array` of that
 * length whose components are all finite.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Embedding = (dimension: number): Schema.Schema<Float32Array> =>
  Schema.instanceOf(Float32Array).pipe(
    Schema.filter((v) => v.length === dimension || `expected ${dimension} components, got ${v.length}`),
    Schema.filter((v) => {
      for (let i = 0; i < v.length; i++) {
        if (!Number.isFinite(v[i]!)) return `component ${i} is ${v[i]}, expected a finite number`
      }
      return true
    }),
    Schema.annotations({ identifier: `Embedding(${dimension})` })
  ) as unknown as Schema.Schema<Float32Array>

const validate = <A>(spec: Omit<FeatureSpec<A>, "_tag">): FeatureSpec<A> => {
  const { value, ...definition } = spec
  const decoded = Schema.decodeUnknownEither(Definition, { onExcessProperty: "error" })(definition)
  if (Either.isLeft(decoded)) {
    const issue = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)[0]
    const where = issue?.path.map(String).join(".") || "spec"
    throw new FeatureSpecError({
      feature: String(spec.name),
      message: `feature spec ${String(spec.name)}: ${where}: ${issue?.message ?? "invalid"}`
    })
  }
  return Object.freeze({ _tag: "FeatureSpec" as const, ...decoded.right, value })
}

/**
 * Defines a feature whose values are described by an effect `Schema` and stored
 * as JSON (the schema's encoded side). Throws a `FeatureSpecError` when the name,
 * version or entity kind is malformed (a definition-time mistake).
 *
 * @example
 * ```ts
 * const Brightness = FeatureSpec.make({
 *   name: "artwork.brightness", version: 1, entity: "artwork",
 *   value: Schema.Struct({ mean: Schema.Number, std: Schema.Number })
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <A, I>(options: {
  readonly name: string
  readonly version: number
  readonly entity: string
  readonly value: Schema.Schema<A, I, never>
}): FeatureSpec<A> =>
  validate({
    name: options.name,
    version: options.version,
    entity: options.entity,
    kind: "json",
    dimension: null,
    schema: String(options.value.ast),
    value: options.value
  })

/**
 * Defines an embedding feature: `Float32Array` values of a fixed dimension, all
 * components finite, stored as raw float32 bytes. Throws a `FeatureSpecError` for
 * a malformed name, version, entity kind or dimension.
 *
 * @example
 * ```ts
 * const Clip = FeatureSpec.embedding({ name: "artwork.clip", version: 1, entity: "artwork", dimension: 512 })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const embedding = (options: {
  readonly name: string
  readonly version: number
  readonly entity: string
  readonly dimension: number
}): FeatureSpec<Float32Array> =>
  validate({
    name: options.name,
    version: options.version,
    entity: options.entity,
    kind: "embedding",
    dimension: options.dimension,
    schema: `Embedding(${options.dimension})`,
    value: Embedding(Number.isInteger(options.dimension) && options.dimension > 0 ? options.dimension : 1)
  })

/**
 * The definition of a spec (without its schema object), as the store records it.
 *
 * @since 0.1.0
 * @category utils
 */
export const definition = (spec: FeatureSpec<any>): Definition => ({
  name: spec.name,
  version: spec.version,
  entity: spec.entity,
  kind: spec.kind,
  dimension: spec.dimension,
  schema: spec.schema
})

/**
 * `name@version`, for messages and operation names.
 *
 * @since 0.1.0
 * @category utils
 */
export const label = (spec: { readonly name: string; readonly version: number }): string =>
  `${spec.name}@${spec.version}`
