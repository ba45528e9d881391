/**
 * `@org/jasper/promise`: the catalog and the decoders for services that do not use
 * Effect. Every call returns a Promise that rejects with the same tagged error classes
 * as the Effect API (`instanceof JasperError.DecodeError`, `error._tag`). Effect stays
 * the primary API; this entry runs it on a `ManagedRuntime`.
 *
 * @example
 * ```js
 * import { Jasper } from "@org/jasper/promise"
 *
 * const jasper = await Jasper.open({ sqlite: "media.db", roots: ["./media"], derivatives: "./derivatives" })
 * await jasper.putEntity({ id: "art-1", kind: "artwork" })
 * const poster = await jasper.register({ entityId: "art-1", role: "poster", uri: "./media/poster.jpg" })
 * const tensor = await jasper.decodeImage(poster, { resize: { width: 224, height: 224 }, dtype: "float32" })
 * await jasper.close()
 * ```
 * @since 0.1.0
 */
export * as Derivative from "./Derivative.js"
export * as Jasper from "./promise/Jasper.js"
export * as JasperError from "./JasperError.js"
export * as TestMedia from "./promise/TestMedia.js"
