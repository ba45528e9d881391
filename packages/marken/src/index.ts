/**
 * @org/marken: typed, versioned annotations with temporal, spatial, payload and
 * vector (HNSW) search, served over HTTP.
 *
 * @since 0.1.0
 */
export * as Annotation from "./Annotation.js"
export * as Annotations from "./Annotations.js"
export * as AnnotationType from "./AnnotationType.js"
export * as MarkenError from "./MarkenError.js"
export * as Operation from "./Operation.js"
export * as Query from "./Query.js"
export * as Region from "./Region.js"
export * as Registry from "./Registry.js"
export * as Time from "./Time.js"
export * as MarkenApi from "./MarkenApi.js"
export * as MarkenClient from "./MarkenClient.js"
export * as MarkenServer from "./MarkenServer.js"
