/**
 * Annotation types: a name, a `major.minor` version, a payload schema and the
 * vector fields its annotations may carry.
 *
 * @since 0.1.0
 */
import { JSONSchema, Schema } from "effect"
import { JsonValue } from "./internal/codec.js"

/**
 * A vector field of a type: its dimension and the distance the index uses.
 *
 * @since 0.1.0
 * @category models
 */
export const VectorField = Schema.Struct({
  dimension: Schema.Int.pipe(Schema.between(1, 4096)),
  metric: Schema.Literal("cosine", "l2")
})

/**
 * @since 0.1.0
 * @category models
 */
export type VectorField = Schema.Schema.Type<typeof VectorField>

/**
 * The serializable description of a type version, as the registry stores it and
 * serves it over HTTP: the payload as a JSON Schema.
 *
 * @since 0.1.0
 * @category models
 */
export const Definition = Schema.Struct({
  name: Schema.String,
  version: Schema.String,
  jsonSchema: Schema.Record({ key: Schema.String, value: JsonValue }),
  vectors: Schema.optionalWith(Schema.Record({ key: Schema.String, value: VectorField }), { default: () => ({}) }),
  /** Payload fields with a database index (`"payload.genre"`), used by queries and filtered kNN. */
  indexes: Schema.optionalWith(Schema.Array(Schema.String).pipe(Schema.maxItems(32)), { default: () => [] })
})

/**
 * @since 0.1.0
 * @category models
 */
export type Definition = Schema.Schema.Type<typeof Definition>

/**
 * A typed annotation type version: `A` is the payload as code sees it, `I` as it is
 * stored (JSON).
 *
 * @since 0.1.0
 * @category models
 */
export interface AnnotationType<A = any, I = any> {
  readonly name: string
  readonly version: string
  readonly payload: Schema.Schema<A, I>
  readonly vectors: Readonly<Record<string, VectorField>>
  /** Indexed payload fields (`"payload.genre"`): database indexes that queries and filtered kNN use. */
  readonly indexes: ReadonlyArray<string>
  /** The payload's JSON Schema (from `JSONSchema.make`). */
  readonly jsonSchema: Readonly<Record<string, unknown>>
}

/**
 * Describes a type version.
 *
 * @example
 * ```ts
 * const Shot = AnnotationType.make({
 *   name: "shot",
 *   version: "1.0",
 *   payload: Schema.Struct({ kind: Schema.Literal("cut", "fade") }),
 *   vectors: { embedding: { dimension: 512, metric: "cosine" } },
 *   indexes: ["payload.kind"]
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <A, I>(options: {
  readonly name: string
  readonly version: string
  readonly payload: Schema.Schema<A, I>
  readonly vectors?: Readonly<Record<string, VectorField>>
  /**
   * Payload fields to index (`"payload.genre"`, `"payload.scores.violence"`): each
   * becomes a database index (created when the version is registered, dropped when
   * the newest version of every type leaves it out) that queries and filtered kNN use.
   */
  readonly indexes?: ReadonlyArray<string>
}): AnnotationType<A, I> => ({
  name: options.name,
  version: options.version,
  payload: options.payload,
  vectors: options.vectors ?? {},
  indexes: options.indexes ?? [],
  jsonSchema: JSONSchema.make(options.payload) as unknown as Record<string, unknown>
})

/**
 * The stored description of a typed type version.
 *
 * @since 0.1.0
 * @category getters
 */
export const definition = (self: AnnotationType): Definition => ({
  name: self.name,
  version: self.version,
  jsonSchema: self.jsonSchema as Record<string, unknown>,
  vectors: self.vectors,
  indexes: self.indexes ?? []
})

/**
 * Splits `"2.1"` into `{ major: 2, minor: 1 }`; undefined when malformed.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseVersion = (version: string): { readonly major: number; readonly minor: number } | undefined => {
  const m = /^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$/.exec(version)
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined
}

/**
 * The pattern type names follow: a letter, then letters, digits, `_`, `-`, `.` or `/` (at most 100).
 *
 * @since 0.1.0
 * @category constants
 */
export const namePattern = /^[A-Za-z][A-Za-z0-9_./-]{0,99}$/
