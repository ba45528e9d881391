/**
 * `@org/marken/client`: what a client of a Marken server needs (the API definition,
 * the typed client, the errors and the models) without the service, its HNSW index
 * (a native module) or the Node HTTP server.
 *
 * @since 0.2.0
 */
export * as Annotation from "./Annotation.js"
export * as AnnotationType from "./AnnotationType.js"
export * as MarkenApi from "./MarkenApi.js"
export * as MarkenClient from "./MarkenClient.js"
export * as MarkenError from "./MarkenError.js"
export * as Operation from "./Operation.js"
export * as Query from "./Query.js"
export * as Region from "./Region.js"
export * as Time from "./Time.js"
