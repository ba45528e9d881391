/**
 * Annotation operations: one run of a producer over a type version. Readers see the
 * latest finished run of each (type, version, producer key); a run becomes visible
 * all at once when it finishes.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { Producer } from "./Annotation.js"

/**
 * The state of an operation: `open` (taking writes, invisible), `finished`
 * (visible while it is the latest finished run of its key), `cancelled` (its
 * annotations removed).
 *
 * @since 0.1.0
 * @category models
 */
export const Status = Schema.Literal("open", "finished", "cancelled")

/**
 * An operation.
 *
 * @since 0.1.0
 * @category models
 */
export const Operation = Schema.Struct({
  id: Schema.String,
  type: Schema.String,
  version: Schema.String,
  producerKey: Schema.String,
  producer: Schema.Struct({ algorithm: Schema.String, version: Schema.String, run: Schema.optional(Schema.String) }),
  status: Status,
  /** True while it is the run readers see for its key. */
  current: Schema.Boolean,
  startedMs: Schema.Number,
  finishedMs: Schema.optional(Schema.Number)
}).pipe(Schema.annotations({ identifier: "Operation" }))

/**
 * @since 0.1.0
 * @category models
 */
export type Operation = Schema.Schema.Type<typeof Operation>

/**
 * What starts an operation.
 *
 * @since 0.1.0
 * @category models
 */
export const Start = Schema.Struct({ type: Schema.String, version: Schema.String, producer: Producer }).pipe(
  Schema.annotations({ identifier: "OperationStart" })
)

/**
 * @since 0.1.0
 * @category models
 */
export type Start = Schema.Schema.Type<typeof Start>

/**
 * The outcome of an upsert: the annotations written (by their index in the batch)
 * and the items refused, each with the failing field.
 *
 * @since 0.1.0
 * @category models
 */
export const UpsertResult = Schema.Struct({
  written: Schema.Array(Schema.Struct({ index: Schema.Number, id: Schema.String })),
  rejected: Schema.Array(Schema.Struct({ index: Schema.Number, path: Schema.String, message: Schema.String }))
})

/**
 * @since 0.1.0
 * @category models
 */
export type UpsertResult = Schema.Schema.Type<typeof UpsertResult>
