/**
 * `@org/marken/promise`: annotations for services that do not use Effect. Every call
 * returns a Promise that rejects with the same tagged error classes as the Effect API
 * (`instanceof MarkenError.InvalidAnnotationError`, `error._tag`). Effect stays the
 * primary API; this entry runs it on a `ManagedRuntime`.
 *
 * @example
 * ```js
 * import { Schema } from "effect"
 * import { AnnotationType, Marken } from "@org/marken/promise"
 *
 * const Shot = AnnotationType.make({ name: "shot", version: "1.0", payload: Schema.Struct({ score: Schema.Number }) })
 * const marken = await Marken.open({ sqlite: "media.db", indexDirectory: "media.db.index" })
 * await marken.register(Shot)
 * await marken.write({ type: "shot", version: "1.0", producer: { algorithm: "detector", version: "1" } }, items)
 * const page = await marken.query({ entities: ["title:81"] })
 * await marken.close()
 * ```
 * @since 0.1.0
 */
export * as AnnotationType from "./AnnotationType.js"
export * as Marken from "./promise/Marken.js"
export * as MarkenError from "./MarkenError.js"
