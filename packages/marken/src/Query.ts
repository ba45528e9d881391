/**
 * The one query object of Marken, used unchanged by the library and over HTTP.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { JsonValue } from "./internal/codec.js"
import { Region } from "./Region.js"
import { TimeRange } from "./Time.js"

const FieldPath = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}$/, {
    message: () => "a field path is dot-separated identifiers (letters, digits, _), e.g. scores.violence"
  })
)

const Scalar = Schema.Union(Schema.String, Schema.Number, Schema.Boolean)

/**
 * A condition on a payload field (`field` is a dot path into the payload).
 *
 * - `eq`: equals a string, number or boolean
 * - `in`: equals one of `values`
 * - `range`: within `gte`/`gt`/`lte`/`lt` (numbers)
 * - `exists`: the field is present (`exists: true`, default) or absent
 *
 * @since 0.1.0
 * @category models
 */
export const Condition = Schema.Union(
  Schema.Struct({ field: FieldPath, op: Schema.Literal("eq"), value: Scalar }),
  Schema.Struct({
    field: FieldPath,
    op: Schema.Literal("in"),
    values: Schema.Array(Scalar).pipe(Schema.minItems(1), Schema.maxItems(1000))
  }),
  Schema.Struct({
    field: FieldPath,
    op: Schema.Literal("range"),
    gte: Schema.optional(Schema.Number),
    gt: Schema.optional(Schema.Number),
    lte: Schema.optional(Schema.Number),
    lt: Schema.optional(Schema.Number)
  }),
  Schema.Struct({ field: FieldPath, op: Schema.Literal("exists"), exists: Schema.optional(Schema.Boolean) })
).pipe(Schema.annotations({ identifier: "Condition" }))

/**
 * @since 0.1.0
 * @category models
 */
export type Condition = Schema.Schema.Type<typeof Condition>

/**
 * What a query may sort by.
 *
 * @since 0.1.0
 * @category models
 */
export const SortField = Schema.Literal("id", "created", "start", "confidence")

/**
 * A query over annotations. Every field is optional; all given ones must hold.
 *
 * @since 0.1.0
 * @category models
 */
export const Query = Schema.Struct({
  /** Annotations of these entities. */
  entities: Schema.optional(Schema.Array(Schema.String).pipe(Schema.maxItems(1000))),
  type: Schema.optional(Schema.String),
  /** A type version; requires `type`. */
  version: Schema.optional(Schema.String),
  /** Annotations whose time range overlaps this one. */
  time: Schema.optional(TimeRange),
  /** Annotations whose region's bounding box intersects this region's bounding box. */
  region: Schema.optional(Region),
  /** Conditions on payload fields. */
  where: Schema.optional(Schema.Array(Condition).pipe(Schema.maxItems(32))),
  /** Labels containing this text (case-insensitive). */
  label: Schema.optional(Schema.String.pipe(Schema.maxLength(1000))),
  minConfidence: Schema.optional(Schema.Number.pipe(Schema.between(0, 1))),
  /** Annotations written by this producer key. */
  producer: Schema.optional(Schema.String),
  /** Annotations of this operation (finished or not); default: the latest finished run of every producer. */
  operationId: Schema.optional(Schema.String),
  sort: Schema.optional(SortField),
  order: Schema.optional(Schema.Literal("asc", "desc")),
  /** Page size, 1 to 1000 (default 100). */
  limit: Schema.optional(Schema.Int.pipe(Schema.between(1, 1000))),
  /** The `next` cursor of the previous page. */
  cursor: Schema.optional(Schema.String.pipe(Schema.maxLength(2000))),
  /** Include vectors in the results. */
  withVectors: Schema.optional(Schema.Boolean)
}).pipe(Schema.annotations({ identifier: "Query" }))

/**
 * @since 0.1.0
 * @category models
 */
export type Query = Schema.Schema.Type<typeof Query>

/**
 * What `count` may group by: a column or `payload.<path>`.
 *
 * @since 0.1.0
 * @category models
 */
export const GroupBy = Schema.Union(
  Schema.Literal("entity", "type", "version", "label", "producer", "operation"),
  Schema.TemplateLiteral(Schema.Literal("payload."), Schema.String)
)

/**
 * @since 0.1.0
 * @category models
 */
export type GroupBy = Schema.Schema.Type<typeof GroupBy>

/**
 * A vector search: the `k` nearest annotations to `vector` in the index of
 * (`type`, `version`, `field`), among those matching `filter`.
 *
 * @since 0.1.0
 * @category models
 */
export const Knn = Schema.Struct({
  type: Schema.String,
  version: Schema.String,
  field: Schema.String,
  vector: Schema.Array(Schema.Number),
  k: Schema.Int.pipe(Schema.between(1, 1000)),
  /** Search effort (HNSW `ef`); raised automatically to at least `k`. */
  ef: Schema.optional(Schema.Int.pipe(Schema.between(1, 10000))),
  filter: Schema.optional(Query),
  /** Return each hit's payload too (one more query, instead of a round trip per hit). */
  includePayload: Schema.optional(Schema.Boolean)
}).pipe(Schema.annotations({ identifier: "Knn" }))

/**
 * A vector search from code: the vector may be a `Float32Array`.
 *
 * @since 0.1.0
 * @category models
 */
export type Knn = Omit<Schema.Schema.Type<typeof Knn>, "vector"> & {
  readonly vector: Float32Array | ReadonlyArray<number>
}

/**
 * One vector search hit: the annotation id and its distance (cosine distance
 * `1 - cos`, or squared L2), nearest first; its payload with `includePayload`.
 *
 * @since 0.1.0
 * @category models
 */
export const Hit = Schema.Struct({
  id: Schema.String,
  distance: Schema.Number,
  /** The annotation's payload, with `includePayload`. */
  payload: Schema.optional(JsonValue)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Hit = Schema.Schema.Type<typeof Hit>

/**
 * A pairs search: the `k` most similar pairs `(a, b)` with `a` from set `left` and
 * `b` from set `right` (both queries over the same vector index).
 *
 * @since 0.1.0
 * @category models
 */
export const Pairs = Schema.Struct({
  type: Schema.String,
  version: Schema.String,
  field: Schema.String,
  left: Query,
  right: Query,
  k: Schema.Int.pipe(Schema.between(1, 1000))
}).pipe(Schema.annotations({ identifier: "Pairs" }))

/**
 * @since 0.1.0
 * @category models
 */
export type Pairs = Schema.Schema.Type<typeof Pairs>

/**
 * One pair: ids from the left and right sets and their distance.
 *
 * @since 0.1.0
 * @category models
 */
export const Pair = Schema.Struct({ left: Schema.String, right: Schema.String, distance: Schema.Number })

/**
 * @since 0.1.0
 * @category models
 */
export type Pair = Schema.Schema.Type<typeof Pair>
