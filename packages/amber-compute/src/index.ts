/**
 * @org/amber-compute: the feature mesh. Algorithms, mesh validation, a recursive
 * resolver and planner, triggers and executors over `@org/amber-store`.
 *
 * @since 0.1.0
 */
export * as Algorithm from "./Algorithm.js"
export * as ComputeError from "./ComputeError.js"
export * as EntitySource from "./EntitySource.js"
export * as Executor from "./Executor.js"
export * as Mesh from "./Mesh.js"
export * as Plan from "./Plan.js"
export * as Resolver from "./Resolver.js"
export * as RunEvent from "./RunEvent.js"
export * as Trigger from "./Trigger.js"
