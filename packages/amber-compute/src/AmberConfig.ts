/**
 * The config module of the `amber` command and of worker processes: an ES module
 * whose default export (or `config` export) names the mesh and the layer that
 * provides what the resolver and the algorithms need (the store and its
 * database, the entity source, any service a compute function uses), and
 * optionally the distributed executor's options and the triggers.
 *
 * @example
 * ```ts
 * // amber.config.mjs
 * import { AmberConfig, EntitySource, Mesh } from "@org/amber-compute"
 * export default AmberConfig.define({ mesh, layer: App, distributed: { url: process.env.DATABASE_URL } })
 * ```
 *
 * @since 0.1.0
 */
import { Data, Effect, Layer } from "effect"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { StorageError } from "@org/storage"
import type * as DistributedExecutor from "./DistributedExecutor.js"
import type * as Mesh from "./Mesh.js"

/**
 * What a config module exports.
 *
 * @since 0.1.0
 * @category models
 */
export interface AmberConfig {
  readonly mesh: Mesh.Mesh<any>
  /** Provides the resolver's and the algorithms' requirements (`FeatureStore`, `EntitySource`, ...). */
  readonly layer: Layer.Layer<any, any, never>
  /** Where the distributed executor's jobs live; without it, `amber run` computes in process. */
  readonly distributed?: DistributedExecutor.Options | undefined
  /** Most entities per task (default: the resolver's). */
  readonly batchSize?: number | undefined
}

/**
 * The config module could not be loaded or does not export a config.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigLoadError extends Data.TaggedError("ConfigLoadError")<{
  readonly path: string
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * Types a config (the identity function).
 *
 * @since 0.1.0
 * @category constructors
 */
export const define = <C extends AmberConfig>(config: C): C => config

/**
 * Checks a value exported by a config module.
 *
 * @since 0.1.0
 * @category constructors
 */
export const check = (value: unknown, where = "config"): Effect.Effect<AmberConfig, ConfigLoadError> => {
  const fail = (message: string) => Effect.fail(new ConfigLoadError({ path: where, message: `${where}: ${message}` }))
  if (typeof value !== "object" || value === null) return fail("exports no config (a default export or `config`)")
  const c = value as Record<string, unknown>
  const mesh = c.mesh as { _tag?: unknown } | undefined
  if (typeof mesh !== "object" || mesh === null || mesh._tag !== "Mesh") return fail("`mesh` is not a Mesh (Mesh.make)")
  if (!Layer.isLayer(c.layer)) return fail("`layer` is not a Layer")
  if (c.distributed !== undefined && (typeof c.distributed !== "object" || c.distributed === null)) {
    return fail("`distributed` must be the distributed executor's options")
  }
  if (c.batchSize !== undefined && !(Number.isInteger(c.batchSize) && (c.batchSize as number) > 0)) {
    return fail("`batchSize` must be a positive integer")
  }
  return Effect.succeed(c as unknown as AmberConfig)
}

/**
 * Imports a config module (a path relative to the working directory, or a URL)
 * and checks its export.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (module: string): Effect.Effect<AmberConfig, ConfigLoadError> =>
  Effect.gen(function* () {
    const url = /^[a-z]+:/i.test(module) ? module : pathToFileURL(path.resolve(module)).href
    const exports = yield* Effect.tryPromise({
      try: () => import(url) as Promise<Record<string, unknown>>,
      catch: (cause) =>
        new ConfigLoadError({
          path: module,
          message: `${module}: cannot import the config module: ${StorageError.messageOf(cause)}`,
          cause
        })
    })
    return yield* check(exports.default ?? exports.config, module)
  })
