/**
 * @org/amber-store: a feature store for media entities that never computes the
 * same feature twice, with lineage.
 *
 * @since 0.1.0
 */
export * as FeatureSpec from "./FeatureSpec.js"
export * as FeatureStore from "./FeatureStore.js"
export * as Fingerprint from "./Fingerprint.js"
export * as StoreError from "./StoreError.js"
