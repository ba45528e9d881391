/**
 * `@org/amber-store/promise`: the feature store for services that do not use Effect.
 * Every call returns a Promise that rejects with the same tagged error classes as the
 * Effect API (`instanceof StoreError.InvalidValueError`, `error._tag`). Effect stays
 * the primary API; this entry runs it on a `ManagedRuntime`.
 *
 * @example
 * ```js
 * import { Schema } from "effect"
 * import { FeatureSpec, FeatureStore, Fingerprint } from "@org/amber-store/promise"
 *
 * const Brightness = FeatureSpec.make({ name: "artwork.brightness", version: 1, entity: "artwork", value: Schema.Number })
 * const store = await FeatureStore.open({ sqlite: "media.db" }) // or { postgres: process.env.DATABASE_URL }
 * const fp = await Fingerprint.make({ assets: { image: "sha256:..." }, params: { size: 224 } })
 * const value = await store.getOrCompute(Brightness, "artwork-1", fp, async () => 0.42)
 * await store.close()
 * ```
 * @since 0.1.0
 */
export * as FeatureSpec from "./FeatureSpec.js"
export * as FeatureStore from "./promise/FeatureStore.js"
export * as Fingerprint from "./promise/Fingerprint.js"
export * as StoreError from "./StoreError.js"
