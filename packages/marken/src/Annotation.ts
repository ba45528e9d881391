/**
 * Annotations: what a producer said about an entity, optionally at a time range,
 * in a region, with a payload typed by its annotation type, a label, a confidence
 * and embedding vectors.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { JsonValue } from "./internal/codec.js"
import { Region } from "./Region.js"
import { FrameRate, TimeRange } from "./Time.js"

/**
 * Who wrote an annotation: the algorithm, its version, an optional run label and
 * the producer key that identifies its operations (defaults to the algorithm).
 *
 * @since 0.1.0
 * @category models
 */
export const Producer = Schema.Struct({
  algorithm: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
  version: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(100)),
  run: Schema.optional(Schema.String.pipe(Schema.maxLength(200))),
  key: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)))
})

/**
 * @since 0.1.0
 * @category models
 */
export type Producer = Schema.Schema.Type<typeof Producer>

/**
 * The fields common to an annotation being written and one being read.
 *
 * @since 0.1.0
 * @category models
 */
export const Fields = {
  /** The media entity annotated (a title, a video, an artwork...). */
  entity: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(500)),
  /** A key unique within an operation: upserting the same key again replaces the annotation. */
  key: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(500))),
  time: Schema.optional(TimeRange),
  frameRate: Schema.optional(FrameRate),
  region: Schema.optional(Region),
  payload: JsonValue,
  label: Schema.optional(Schema.String.pipe(Schema.maxLength(1000))),
  confidence: Schema.optional(Schema.Number.pipe(Schema.between(0, 1)))
}

const Vectors = Schema.Record({ key: Schema.String, value: Schema.Array(Schema.Number) })

/**
 * An annotation written inside an operation (the JSON form, as HTTP clients send
 * it): the operation gives its type, version and producer. Vectors are arrays of
 * numbers keyed by the type's vector fields.
 *
 * @since 0.1.0
 * @category models
 */
export const Item = Schema.Struct({ ...Fields, vectors: Schema.optional(Vectors) }).pipe(
  Schema.annotations({ identifier: "AnnotationItem" })
)

/**
 * An annotation written inside an operation. From code, vectors may be `Float32Array`s.
 *
 * @since 0.1.0
 * @category models
 */
export type Item = Omit<Schema.Schema.Type<typeof Item>, "vectors"> & {
  readonly vectors?: Readonly<Record<string, Float32Array | ReadonlyArray<number>>> | undefined
}

/**
 * An annotation created on its own (CRUD): it joins the current run of its
 * producer for its type version (a one-annotation run is made when there is none).
 *
 * @since 0.1.0
 * @category models
 */
export const Input = Schema.Struct({
  ...Fields,
  /** The annotation type's name. */
  type: Schema.String,
  /** The type version, `"major.minor"`. */
  version: Schema.String,
  producer: Producer,
  vectors: Schema.optional(Vectors)
}).pipe(Schema.annotations({ identifier: "AnnotationInput" }))

/**
 * @since 0.1.0
 * @category models
 */
export type Input = Omit<Schema.Schema.Type<typeof Input>, "vectors"> & {
  readonly vectors?: Readonly<Record<string, Float32Array | ReadonlyArray<number>>> | undefined
}

/**
 * A stored annotation as it is returned over HTTP.
 *
 * @since 0.1.0
 * @category models
 */
export const Annotation = Schema.Struct({
  id: Schema.String,
  operationId: Schema.String,
  type: Schema.String,
  version: Schema.String,
  ...Fields,
  producer: Schema.Struct({
    algorithm: Schema.String,
    version: Schema.String,
    run: Schema.optional(Schema.String),
    key: Schema.String
  }),
  createdMs: Schema.Number,
  vectors: Schema.optional(Vectors)
}).pipe(Schema.annotations({ identifier: "Annotation" }))

/**
 * A stored annotation. Its id is a UUIDv7, so ids sort by creation time.
 *
 * @since 0.1.0
 * @category models
 */
export type Annotation = Omit<Schema.Schema.Type<typeof Annotation>, "vectors"> & {
  readonly vectors?: Readonly<Record<string, Float32Array>> | undefined
}

/**
 * An annotation with its payload decoded by its type's schema.
 *
 * @since 0.1.0
 * @category models
 */
export type Typed<A> = Omit<Annotation, "payload"> & { readonly payload: A }

/**
 * A change to an existing annotation (the fields given replace the stored ones).
 *
 * @since 0.1.0
 * @category models
 */
export const Patch = Schema.Struct({
  time: Schema.optional(TimeRange),
  frameRate: Schema.optional(FrameRate),
  region: Schema.optional(Region),
  payload: Schema.optional(JsonValue),
  label: Schema.optional(Schema.String.pipe(Schema.maxLength(1000))),
  confidence: Schema.optional(Schema.Number.pipe(Schema.between(0, 1))),
  vectors: Schema.optional(Vectors)
}).pipe(Schema.annotations({ identifier: "AnnotationPatch" }))

/**
 * @since 0.1.0
 * @category models
 */
export type Patch = Omit<Schema.Schema.Type<typeof Patch>, "vectors"> & {
  readonly vectors?: Readonly<Record<string, Float32Array | ReadonlyArray<number>>> | undefined
}
