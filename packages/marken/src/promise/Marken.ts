/**
 * Marken as Promises: {@link open} the annotation service (with its type registry) on a
 * SQLite file or PostgreSQL, register types, write runs, query and search, serve it over
 * HTTP, {@link Marken.close close} it. Rejections are the tagged errors of the Effect API
 * (`InvalidAnnotationError`, `UnknownTypeError`, `InvalidQueryError`, `StorageError`, ...).
 *
 * @since 0.1.0
 */
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { PromiseRuntime } from "@org/storage"
import type * as Annotation from "../Annotation.js"
import * as Annotations from "../Annotations.js"
import type * as AnnotationType from "../AnnotationType.js"
import type * as MarkenServer from "../MarkenServer.js"
import type * as Operation from "../Operation.js"
import type * as Query from "../Query.js"
import { Registry } from "../Registry.js"

/**
 * Where the annotations live (`{ sqlite: "media.db" }` or `{ postgres: url }`) and the
 * service's options (`indexDirectory` for the HNSW index files, `ef`, `m`, ...).
 *
 * @since 0.1.0
 * @category models
 */
export type OpenOptions = PromiseRuntime.StorageOptions & Annotations.Options

/**
 * A running HTTP server of {@link Marken.serve}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Server {
  /** `http://host:port`, the port the server listens on (a free one for `port: 0`). */
  readonly url: string
  readonly port: number
  /** Stops the server (once). */
  readonly close: () => Promise<void>
}

/**
 * An open Marken. Every method returns a Promise; `close` stops its servers and
 * releases the database (persisting the indexes when `indexDirectory` is set).
 *
 * @since 0.1.0
 * @category models
 */
export interface Marken {
  /** Registers a typed version (idempotent when identical); refuses an incompatible change. */
  readonly register: (type: AnnotationType.AnnotationType) => Promise<AnnotationType.Definition>
  /** Registers a version described by a JSON Schema. */
  readonly registerDefinition: (definition: AnnotationType.Definition) => Promise<AnnotationType.Definition>
  /**
   * One run in one call: starts an operation, upserts the items and finishes it (readers
   * see the new run at once); on a failure the operation is cancelled and nothing is
   * visible. With `atomic: false` invalid items are listed in `rejected` and the others written.
   */
  readonly write: (
    start: Operation.Start,
    items: ReadonlyArray<Annotation.Item>,
    options?: { readonly atomic?: boolean }
  ) => Promise<Operation.UpsertResult & { readonly operation: Operation.Operation }>
  /** Starts an operation: a run invisible until finished. */
  readonly start: (start: Operation.Start) => Promise<Operation.Operation>
  /** Writes items into an open operation (invalid items refused one by one, or all with `atomic: true`). */
  readonly upsert: (
    operationId: string,
    items: ReadonlyArray<Annotation.Item>,
    options?: { readonly atomic?: boolean }
  ) => Promise<Operation.UpsertResult>
  /** Makes the operation the run readers see. */
  readonly finish: (operationId: string) => Promise<Operation.Operation>
  /** Cancels an open operation and removes what it wrote. */
  readonly cancel: (operationId: string) => Promise<Operation.Operation>
  /** One annotation by id. */
  readonly get: (id: string, options?: { readonly withVectors?: boolean }) => Promise<Annotation.Annotation>
  /** Annotations matching a query (a page; `next` is the cursor of the following one). */
  readonly query: (query: Query.Query) => Promise<Annotations.Page>
  /** Counts the annotations matching a query, grouped. */
  readonly count: (query: Query.Query, by: Query.GroupBy) => Promise<ReadonlyArray<Annotations.Group>>
  /** The k nearest annotations to a vector among those matching the filter. */
  readonly search: (knn: Query.Knn) => Promise<ReadonlyArray<Query.Hit>>
  /** The k most similar pairs between two sets. */
  readonly pairs: (pairs: Query.Pairs) => Promise<ReadonlyArray<Query.Pair>>
  /** Deletes every annotation a query matches, in one transaction. */
  readonly removeWhere: (query: Query.Query) => Promise<{ readonly removed: number }>
  /**
   * Serves this Marken over HTTP on Node (`MarkenServer.layerNode`: bearer tokens with
   * scopes, `/openapi.json`); `port: 0` picks a free port. Needs `@effect/platform-node`.
   */
  readonly serve: (options: MarkenServer.Options & { readonly port: number; readonly host?: string }) => Promise<Server>
  /** Stops the servers, persists the indexes and closes the database (once; later calls reject). */
  readonly close: () => Promise<void>
}

/**
 * Opens Marken on a database: connects, runs its migrations and resolves when it is
 * ready. Rejects with `StorageConfigError` for bad storage options and `StorageError`
 * when the database cannot be opened.
 *
 * @example
 * ```js
 * const marken = await Marken.open({ postgres: process.env.DATABASE_URL, indexDirectory: "/var/lib/marken" })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const open = async (options: OpenOptions): Promise<Marken> => {
  const [storage, markenOptions] = PromiseRuntime.splitStorage(options)
  const layer = Annotations.layerWithRegistry(markenOptions as Annotations.Options).pipe(
    Layer.provide(PromiseRuntime.storageLayer(storage as PromiseRuntime.StorageOptions))
  )
  const handle = await PromiseRuntime.open<Annotations.Annotations | Registry, unknown>(layer)
  const marken = <A, E>(f: (service: Annotations.Service) => Effect.Effect<A, E>): Promise<A> =>
    handle.run(Effect.flatMap(Annotations.Annotations, f))
  const registry = <A, E>(f: (service: Registry["Type"]) => Effect.Effect<A, E>): Promise<A> =>
    handle.run(Effect.flatMap(Registry, f))
  const servers = new Set<Server>()
  return {
    register: (type) => registry((r) => r.register(type)),
    registerDefinition: (definition) => registry((r) => r.registerDefinition(definition)),
    write: (start, items, writeOptions) =>
      marken((m) =>
        Effect.gen(function* () {
          const operation = yield* m.start(start)
          const result = yield* m
            .upsert(operation.id, items, { atomic: writeOptions?.atomic ?? true })
            .pipe(Effect.onError(() => Effect.ignore(m.cancel(operation.id))))
          const finished = yield* m.finish(operation.id)
          return { ...result, operation: finished }
        })
      ),
    start: (start) => marken((m) => m.start(start)),
    upsert: (operationId, items, upsertOptions) => marken((m) => m.upsert(operationId, items, upsertOptions)),
    finish: (operationId) => marken((m) => m.finish(operationId)),
    cancel: (operationId) => marken((m) => m.cancel(operationId)),
    get: (id, getOptions) => marken((m) => m.get(id, getOptions)),
    query: (query) => marken((m) => m.query(query)),
    count: (query, by) => marken((m) => m.count(query, by)),
    search: (knn) => marken((m) => m.search(knn)),
    pairs: (pairs) => marken((m) => m.pairs(pairs)),
    removeWhere: (query) => marken((m) => m.removeWhere(query)),
    serve: async (serveOptions) => {
      const MarkenServer = await import("../MarkenServer.js")
      const { HttpServer } = await import("@effect/platform")
      const scope = await PromiseRuntime.run(Scope.make())
      const port = await handle.run(
        Effect.gen(function* () {
          const context = yield* Layer.buildWithScope(MarkenServer.layerNode(serveOptions), scope)
          const address = Context.get(context, HttpServer.HttpServer).address
          return address._tag === "TcpAddress" ? address.port : serveOptions.port
        }).pipe(Effect.onError(() => Scope.close(scope, Exit.void)))
      )
      let closed: Promise<void> | undefined
      const server: Server = {
        url: `http://${serveOptions.host ?? "127.0.0.1"}:${port}`,
        port,
        close: () => {
          servers.delete(server)
          return (closed ??= PromiseRuntime.run(Scope.close(scope, Exit.void)))
        }
      }
      servers.add(server)
      return server
    },
    close: async () => {
      await Promise.all(Array.from(servers, (s) => s.close()))
      await handle.close()
    }
  }
}
