/**
 * One layer for the whole of Jasper: readers, the catalog and derivatives on the
 * `Database` an application provides.
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import type { Database, StorageError } from "@org/storage"
import * as Catalog from "./Catalog.js"
import * as Derivative from "./Derivative.js"
import * as Reader from "./Reader.js"

/**
 * Options of {@link layer}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Reader.LayerOptions, Catalog.Options {
  /** The folder derivatives are stored under. */
  readonly derivatives: string
}

/**
 * `Reader`, `Catalog` and `Derivatives` on the `Database` below.
 *
 * @example
 * ```ts
 * const App = Jasper.layer({ roots: ["./media"], derivatives: "./derivatives" }).pipe(
 *   Layer.provide(SqliteStorage.layer({ filename: "media.db" }))
 * )
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  Reader.Reader | Catalog.Catalog | Derivative.Derivatives,
  StorageError.StorageError,
  Database.Database
> => {
  const readers = Reader.layer(options)
  const catalog = Catalog.layer(options).pipe(Layer.provideMerge(readers))
  return Derivative.layer({ dir: options.derivatives }).pipe(Layer.provideMerge(catalog))
}
