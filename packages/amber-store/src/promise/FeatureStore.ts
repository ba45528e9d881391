/**
 * The feature store as Promises: {@link open} a store on a SQLite file, PostgreSQL or
 * memory, call it, {@link FeatureStore.close close} it. Rejections are the tagged errors
 * of the Effect API (`InvalidValueError`, `ImmutableValueError`, `StorageError`, ...),
 * and a compute function's own rejection is passed through as it was thrown.
 *
 * @since 0.1.0
 */
import { Effect, Either, Layer, Option } from "effect"
import { PromiseRuntime } from "@org/storage"
import type * as FeatureSpec from "../FeatureSpec.js"
import type * as Fingerprint from "../Fingerprint.js"
import * as Store from "../FeatureStore.js"
import type { ImmutableValueError, InvalidValueError } from "../StoreError.js"

/**
 * Where the store lives (`{ sqlite: "media.db" }`, `{ postgres: url }` or `{ memory: true }`)
 * and the store's options (`producer`, `run`, `leaseMs`, `pollMs`, `maxParameters`).
 *
 * @since 0.1.0
 * @category models
 */
export type OpenOptions = (PromiseRuntime.StorageOptions | { readonly memory: true }) & Store.Options

/**
 * A value's key: entity and fingerprint.
 *
 * @since 0.1.0
 * @category models
 */
export type Ref = Store.Ref

/**
 * Producer and run recorded with a value.
 *
 * @since 0.1.0
 * @category models
 */
export type Provenance = Store.Provenance

/**
 * What a stored value was computed from, by whom and when.
 *
 * @since 0.1.0
 * @category models
 */
export type Lineage = Store.Lineage

/**
 * An open store. Every method returns a Promise; `close` releases the database.
 *
 * @since 0.1.0
 * @category models
 */
export interface FeatureStore {
  /** The stored value, or computes it once (in this process and across processes), stores it and returns it. */
  readonly getOrCompute: <A>(
    spec: FeatureSpec.FeatureSpec<A>,
    entity: string,
    fingerprint: Fingerprint.Fingerprint,
    compute: () => A | PromiseLike<A>,
    provenance?: Omit<Provenance, "computeMs">
  ) => Promise<A>
  /** The live value under a key, or `undefined`. */
  readonly get: <A>(
    spec: FeatureSpec.FeatureSpec<A>,
    entity: string,
    fingerprint: Fingerprint.Fingerprint
  ) => Promise<A | undefined>
  /** Live values for many keys, in the order of `refs` (`undefined` where none is stored). */
  readonly getMany: <A>(spec: FeatureSpec.FeatureSpec<A>, refs: ReadonlyArray<Ref>) => Promise<Array<A | undefined>>
  /** Stores a value; the same value again is a no-op, a different one rejects with `ImmutableValueError`. */
  readonly put: <A>(
    spec: FeatureSpec.FeatureSpec<A>,
    entity: string,
    fingerprint: Fingerprint.Fingerprint,
    value: A,
    provenance?: Provenance
  ) => Promise<void>
  /** Stores many values in one transaction: per item `undefined` (stored) or the error that refused it. */
  readonly putMany: <A>(
    spec: FeatureSpec.FeatureSpec<A>,
    items: ReadonlyArray<Store.Item<A>>,
    provenance?: Provenance
  ) => Promise<Array<InvalidValueError | ImmutableValueError | undefined>>
  /** Whether a live value is stored under a key. */
  readonly has: (
    spec: FeatureSpec.FeatureSpec<any>,
    entity: string,
    fingerprint: Fingerprint.Fingerprint
  ) => Promise<boolean>
  /** The lineage of the live value under a key, or `undefined`. */
  readonly lineage: (
    spec: FeatureSpec.FeatureSpec<any>,
    entity: string,
    fingerprint: Fingerprint.Fingerprint
  ) => Promise<Lineage | undefined>
  /** Every value ever stored under a key, invalidated ones included, oldest first. */
  readonly history: (
    spec: FeatureSpec.FeatureSpec<any>,
    entity: string,
    fingerprint: Fingerprint.Fingerprint
  ) => Promise<ReadonlyArray<Lineage>>
  /** The lineage of stored values by entity and/or feature, oldest first. */
  readonly list: (selector: Store.Selector) => Promise<ReadonlyArray<Lineage>>
  /** Marks live values invalidated (kept as history); returns how many. */
  readonly invalidate: (
    selector: Store.Selector & { readonly feature: string | FeatureSpec.FeatureSpec<any>; readonly reason?: string }
  ) => Promise<number>
  /** Hits, misses, computations, waits and takeovers of this store. */
  readonly counters: () => Promise<Store.Counters>
  /** Closes the store and its database connection (once; later calls reject). */
  readonly close: () => Promise<void>
}

/**
 * Opens a store: connects, runs the store's migrations, and resolves when it is
 * ready. Rejects with `StorageConfigError` / `StoreConfigError` for bad options and
 * `StorageError` when the database cannot be opened.
 *
 * @example
 * ```js
 * const store = await FeatureStore.open({ sqlite: "media.db", producer: "thumbnailer@2" })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const open = async (options: OpenOptions): Promise<FeatureStore> => {
  const { memory, ...given } = options as OpenOptions & { readonly memory?: boolean }
  const [storage, storeOptions] = PromiseRuntime.splitStorage(given)
  const layer: Layer.Layer<Store.FeatureStore, unknown> =
    memory === true
      ? Store.layerMemory(storeOptions)
      : Store.layer(storeOptions).pipe(
          Layer.provide(PromiseRuntime.storageLayer(storage as PromiseRuntime.StorageOptions))
        )
  const handle = await PromiseRuntime.open(layer)
  const withStore = <A, E>(f: (store: Store.Service) => Effect.Effect<A, E>): Promise<A> =>
    handle.run(Effect.flatMap(Store.FeatureStore, f))
  return {
    getOrCompute: (spec, entity, fingerprint, compute, provenance) =>
      withStore((s) =>
        s.getOrCompute(
          spec,
          entity,
          fingerprint,
          Effect.tryPromise({ try: async () => compute(), catch: (thrown) => thrown }),
          provenance
        )
      ),
    get: (spec, entity, fingerprint) =>
      withStore((s) => Effect.map(s.get(spec, entity, fingerprint), Option.getOrUndefined)),
    getMany: (spec, refs) => withStore((s) => Effect.map(s.getMany(spec, refs), (os) => os.map(Option.getOrUndefined))),
    put: (spec, entity, fingerprint, value, provenance) =>
      withStore((s) => s.put(spec, entity, fingerprint, value, provenance)),
    putMany: (spec, items, provenance) =>
      withStore((s) =>
        Effect.map(s.putMany(spec, items, provenance), (results) =>
          results.map((r) => (Either.isLeft(r) ? r.left : undefined))
        )
      ),
    has: (spec, entity, fingerprint) => withStore((s) => s.has(spec, entity, fingerprint)),
    lineage: (spec, entity, fingerprint) =>
      withStore((s) => Effect.map(s.lineage(spec, entity, fingerprint), Option.getOrUndefined)),
    history: (spec, entity, fingerprint) => withStore((s) => s.history(spec, entity, fingerprint)),
    list: (selector) => withStore((s) => s.list(selector)),
    invalidate: (selector) => withStore((s) => s.invalidate(selector)),
    counters: () => withStore((s) => s.counters),
    close: handle.close
  }
}
