/**
 * The feature store: memoized, immutable, versioned feature values tied to media
 * entities, with their lineage, shared by every process that points at the same
 * database. `getOrCompute` computes a value at most once per key: once per process
 * (single-flight) and once across processes (a claim with a lease in the database).
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Either, Exit, Layer, Option, ParseResult, Schema } from "effect"
import { Database } from "@org/storage"
import type { StorageError as Storage } from "@org/storage"
import { randomBytes } from "node:crypto"
import * as os from "node:os"
import * as FeatureSpec from "./FeatureSpec.js"
import type * as Fingerprint from "./Fingerprint.js"
import type { Backend, Key, NewRow } from "./internal/backend.js"
import { canonicalJson } from "./internal/canonical.js"
import {
  bytesEqual,
  decode,
  decodeEmbeddings,
  type Encoded,
  encode,
  invalid,
  littleEndian,
  sameValue
} from "./internal/codec.js"
import { inputsText } from "./internal/fingerprints.js"
import * as MemoryBackend from "./internal/memory.js"
import * as SingleFlight from "./internal/singleFlight.js"
import * as SqlBackend from "./internal/sql.js"
import {
  type CorruptValueError,
  FeatureMismatchError,
  ImmutableValueError,
  type InvalidValueError,
  StoreConfigError,
  UnknownFeatureError
} from "./StoreError.js"

type StorageError = Storage.StorageError

/**
 * Options of a store.
 *
 * @since 0.1.0
 * @category models
 */
export const Options = Schema.Struct({
  /** Recorded as the producer of values put without one (default `"amber-store"`). */
  producer: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  /** Recorded as the run of values put without one (default: a random id per store). */
  run: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  /**
   * How long a claim on a key lasts without renewal, in milliseconds (default
   * 30000). A holder renews it every third of the lease while it computes; when a
   * holder dies, a waiter takes over after the lease.
   */
  leaseMs: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(50))),
  /** The longest pause between two looks of a waiter, in milliseconds (default 200). */
  pollMs: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** Most bind parameters in one statement; batches are chunked below it (default 32000; SQLite allows 32766). */
  maxParameters: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(16)))
})

/**
 * @since 0.1.0
 * @category models
 */
export type Options = Schema.Schema.Encoded<typeof Options>

/**
 * A key within one feature: the entity and the fingerprint of the inputs (which
 * carries the parameter hash).
 *
 * @since 0.1.0
 * @category models
 */
export interface Ref {
  readonly entity: string
  readonly fingerprint: Fingerprint.Fingerprint
}

/**
 * Who wrote a value: the producer (an algorithm and its version) and the run.
 *
 * @since 0.1.0
 * @category models
 */
export interface Provenance {
  readonly producer?: string
  readonly run?: string
  /** How long the computation took, when known. */
  readonly computeMs?: number
}

/**
 * One value of a `putMany` batch.
 *
 * @since 0.1.0
 * @category models
 */
export interface Item<A> extends Ref, Provenance {
  readonly value: A
}

/**
 * One key of a `getOrComputeMany` batch and the computation of its value.
 *
 * @since 0.1.0
 * @category models
 */
export interface ComputeItem<A, E, R> extends Ref {
  readonly compute: Effect.Effect<A, E, R>
}

/**
 * Options of `getOrComputeMany`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ComputeManyOptions extends Omit<Provenance, "computeMs"> {
  /** Most computations running at once (default: unbounded). */
  readonly concurrency?: number | "unbounded"
  /**
   * Computed values are written together, in one transaction, when the last
   * computation ends, and earlier whenever this many milliseconds have passed
   * since the last write (default 1000): slow computations land as they finish.
   */
  readonly flushMs?: number
  /**
   * Whether the stored values are read before claiming (default true). `false` when
   * the caller has just read the keys and found them missing (a plan, a queued task):
   * they are claimed at once, and a value stored since is still found by the claim.
   */
  readonly readFirst?: boolean
}

/**
 * What a stored value was computed from, by which producer and run, and when.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lineage {
  readonly feature: string
  readonly version: number
  readonly entity: string
  /** The parameter hash of the key. */
  readonly params: string
  /** The input fingerprint of the key. */
  readonly fingerprint: string
  readonly inputs: Fingerprint.CanonicalInputs
  readonly producer: string
  readonly run: string
  /** When the value was stored (epoch milliseconds). */
  readonly createdAt: number
  readonly computeMs: number | null
  /** When the value was invalidated (epoch milliseconds), if it was. */
  readonly invalidatedAt: number | null
  readonly reason: string | null
}

/**
 * Counters of one store instance (one process).
 *
 * @since 0.1.0
 * @category models
 */
export interface Counters {
  /** Lookups (`get`, `getMany` per key, `getOrCompute`) that found a stored value. */
  readonly hits: number
  /** Lookups that found none. */
  readonly misses: number
  /** Computations run by `getOrCompute` in this store. */
  readonly computations: number
  /** `getOrCompute` misses answered by another fiber's or process's computation. */
  readonly waits: number
  /** Claims taken over from a holder whose lease ran out. */
  readonly takeovers: number
}

/**
 * Which values `list` and `invalidate` select. `feature` is a spec or a feature
 * name; with a spec, its version is used unless `version` is given.
 *
 * @since 0.1.0
 * @category models
 */
export interface Selector {
  readonly feature?: string | FeatureSpec.FeatureSpec<any>
  readonly version?: number
  readonly entity?: string
  readonly fingerprint?: Fingerprint.Fingerprint
  /** `list` only: include invalidated values (history). */
  readonly includeInvalidated?: boolean
}

/**
 * The errors a lookup can meet.
 *
 * @since 0.1.0
 * @category models
 */
export type ReadError = InvalidValueError | CorruptValueError | FeatureMismatchError | StorageError

/**
 * The shape of the `FeatureStore` service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Records a spec; fails when the same name and version is already recorded with another definition. */
  readonly register: (spec: FeatureSpec.FeatureSpec<any>) => Effect.Effect<void, FeatureMismatchError | StorageError>
  /** The live value under a key. */
  readonly get: <A>(
    spec: FeatureSpec.FeatureSpec<A>,
    entity: string,
    fingerprint: Fingerprint.Fingerprint
  ) => Effect.Effect<Option.Option<A>, ReadError>
  /** Live values for many keys, in the order of `refs`: one round trip per batch (chunked below the parameter limit). */
  readonly getMany: <A>(
    spec: FeatureSpec.FeatureSpec<A>,
    refs: ReadonlyArray<Ref>
  ) => Effect.Effect<ReadonlyArray<Option.Option<A>>, ReadError>
  /**
   * Stores a value. The same value again is a no-op; a different value under a key
   * that holds one fails with `ImmutableValueError`. A value that fails its schema
   * fails with `InvalidValueError` and writes nothing.
   */
  readonly put: <A>(
    spec: FeatureSpec.FeatureSpec<A>,
    entity: string,
    fingerprint: Fingerprint.Fingerprint,
    value: A,
    provenance?: Provenance
  ) => Effect.Effect<void, InvalidValueError | ImmutableValueError | FeatureMismatchError | StorageError>
  /**
   * Stores many values in one transaction. Each item gets its own result: a bad
   * or conflicting item does not stop the others.
   */
  readonly putMany: <A>(
    spec: FeatureSpec.FeatureSpec<A>,
    items: ReadonlyArray<Item<A>>,
    provenance?: Provenance
  ) => Effect.Effect<
    ReadonlyArray<Either.Either<void, InvalidValueError | ImmutableValueError>>,
    FeatureMismatchError | StorageError
  >
  /**
   * The stored value, or computes it once, stores it with its lineage and returns
   * it. Concurrent calls on one key, in this process or in others sharing the
   * database, compute once; the others wait for the stored value.
   */
  readonly getOrCompute: <A, E, R>(
    spec: FeatureSpec.FeatureSpec<A>,
    entity: string,
    fingerprint: Fingerprint.Fingerprint,
    compute: Effect.Effect<A, E, R>,
    provenance?: Omit<Provenance, "computeMs">
  ) => Effect.Effect<A, E | ReadError | ImmutableValueError, R>
  /**
   * `getOrCompute` for many keys of one feature, in a few round trips instead of
   * about ten per key: one read of what is stored; one transaction claiming every
   * missing key (a multi-row insert); the computations of the claimed keys
   * (`concurrency` at a time, each claim renewed while they run); one transaction
   * writing the computed values and releasing their claims (about every `flushMs`,
   * and at the end). The guarantees are those of `getOrCompute`: a key computing
   * in this process already is waited for, a key another process holds is waited
   * for (or taken over when its lease runs out), a value that landed meanwhile
   * wins. Each item gets its own result, in the order of `items`: the value, or
   * its computation's failure, or its invalid value (nothing is stored for it and
   * its claim is released). The call as a whole fails only when the database does
   * (or the spec is defined differently); claims it holds then are released.
   */
  readonly getOrComputeMany: <A, E, R>(
    spec: FeatureSpec.FeatureSpec<A>,
    items: ReadonlyArray<ComputeItem<A, E, R>>,
    options?: ComputeManyOptions
  ) => Effect.Effect<
    ReadonlyArray<Exit.Exit<A, E | ReadError | ImmutableValueError>>,
    FeatureMismatchError | StorageError,
    R
  >
  /** Whether a live value is stored under a key. */
  readonly has: (
    spec: FeatureSpec.FeatureSpec<any>,
    entity: string,
    fingerprint: Fingerprint.Fingerprint
  ) => Effect.Effect<boolean, InvalidValueError | FeatureMismatchError | StorageError>
  /** The lineage of stored values by entity and/or feature, oldest first. */
  readonly list: (
    selector: Selector
  ) => Effect.Effect<ReadonlyArray<Lineage>, UnknownFeatureError | FeatureMismatchError | StorageError>
  /** The lineage of the live value under a key. */
  readonly lineage: (
    spec: FeatureSpec.FeatureSpec<any>,
    entity: string,
    fingerprint: Fingerprint.Fingerprint
  ) => Effect.Effect<Option.Option<Lineage>, InvalidValueError | FeatureMismatchError | StorageError>
  /** Every value ever stored under a key, invalidated ones included, oldest first. */
  readonly history: (
    spec: FeatureSpec.FeatureSpec<any>,
    entity: string,
    fingerprint: Fingerprint.Fingerprint
  ) => Effect.Effect<ReadonlyArray<Lineage>, InvalidValueError | FeatureMismatchError | StorageError>
  /**
   * Marks the selected live values invalidated (they stay as history; the next
   * `getOrCompute` recomputes). Returns how many were marked.
   */
  readonly invalidate: (
    selector: Selector & { readonly feature: string | FeatureSpec.FeatureSpec<any>; readonly reason?: string }
  ) => Effect.Effect<number, UnknownFeatureError | FeatureMismatchError | StorageError>
  /** Hits, misses and computations of this store instance. */
  readonly counters: Effect.Effect<Counters>
}

/**
 * The feature store service. Provide it with {@link layer} (on a `Database`) or
 * {@link layerMemory}.
 *
 * @since 0.1.0
 * @category tags
 */
export class FeatureStore extends Context.Tag("@org/amber-store/FeatureStore")<FeatureStore, Service>() {}

interface Resolved {
  readonly producer: string
  readonly run: string
  readonly leaseMs: number
  readonly pollMs: number
  readonly maxParameters: number
}

const resolveOptions = (options: Options | undefined): Effect.Effect<Resolved, StoreConfigError> =>
  Schema.decodeUnknown(Options, { onExcessProperty: "error", errors: "first" })(options ?? {}).pipe(
    Effect.mapError((error) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
      const option = issue?.path.map(String).join(".") || "options"
      return new StoreConfigError({
        option,
        message: `FeatureStore: ${issue?._tag === "Unexpected" ? `unknown option "${option}"` : (issue?.message ?? error.message)}`
      })
    }),
    Effect.flatMap((o) =>
      Effect.map(Clock.currentTimeMillis, (now) => ({
        producer: o.producer ?? "amber-store",
        run: o.run ?? `run-${now.toString(36)}-${randomBytes(4).toString("hex")}`,
        leaseMs: o.leaseMs ?? 30_000,
        pollMs: o.pollMs ?? 200,
        maxParameters: o.maxParameters ?? 32_000
      }))
    )
  )

const HEX64 = /^[0-9a-f]{64}$/

/** The result of an item that was stored (shared: it carries nothing). */
const stored: Either.Either<void, never> = Either.right(undefined)

const sameDefinition = (a: FeatureSpec.Definition, b: FeatureSpec.Definition) =>
  a.entity === b.entity && a.kind === b.kind && a.dimension === b.dimension && a.schema === b.schema

const fromBackend = (backend: Backend, options: Resolved): Service => {
  const owner = `${os.hostname()}:${process.pid}:${randomBytes(6).toString("hex")}`
  const counts = { hits: 0, misses: 0, computations: 0, waits: 0, takeovers: 0 }
  const known = new Map<string, FeatureSpec.Definition>()

  // specs are frozen: one that matched its stored definition once always does
  const verified = new WeakSet<FeatureSpec.FeatureSpec<any>>()

  const ensure = (spec: FeatureSpec.FeatureSpec<any>): Effect.Effect<void, FeatureMismatchError | StorageError> =>
    Effect.suspend(() => {
      if (verified.has(spec)) return Effect.void
      const label = FeatureSpec.label(spec)
      const check = (stored: FeatureSpec.Definition) =>
        sameDefinition(stored, spec)
          ? Effect.sync(() => void verified.add(spec))
          : Effect.fail(
              new FeatureMismatchError({
                feature: spec.name,
                version: spec.version,
                message: `feature ${label} is already defined differently (entity ${stored.entity}, ${stored.kind}${
                  stored.dimension === null ? "" : ` of dimension ${stored.dimension}`
                }, schema ${stored.schema}); bump the version to change it`
              })
            )
      const cached = known.get(label)
      if (cached !== undefined) return check(cached)
      return Effect.flatMap(Clock.currentTimeMillis, (now) =>
        backend.register(FeatureSpec.definition(spec), now).pipe(
          Effect.tap((stored) => Effect.sync(() => known.set(label, stored))),
          Effect.flatMap(check)
        )
      )
    })

  const checkRef = (
    spec: FeatureSpec.FeatureSpec<any>,
    entity: unknown,
    fp: unknown
  ): InvalidValueError | undefined => {
    if (typeof entity !== "string" || entity.length === 0 || entity.length > 1000) {
      return invalid(spec, String(entity ?? ""), "the entity id must be a non-empty string of at most 1000 characters")
    }
    const f = fp as Fingerprint.Fingerprint | undefined
    // made (and frozen) by Fingerprint.make: valid
    if (typeof f === "object" && f !== null && inputsText(f) !== undefined) return undefined
    if (
      typeof f !== "object" ||
      f === null ||
      f._tag !== "Fingerprint" ||
      !HEX64.test(f.hash) ||
      !HEX64.test(f.params)
    ) {
      return invalid(spec, entity, "the fingerprint must come from Fingerprint.make")
    }
    return undefined
  }

  const keyOf = (spec: FeatureSpec.FeatureSpec<any>, entity: string, fp: Fingerprint.Fingerprint): Key => ({
    feature: spec.name,
    version: spec.version,
    params: fp.params,
    entity,
    fingerprint: fp.hash
  })

  const newRow = (
    key: Key,
    encoded: Encoded,
    fp: Fingerprint.Fingerprint,
    now: number,
    provenance: Provenance | undefined,
    fallback: Provenance | undefined
  ): NewRow => ({
    feature: key.feature,
    version: key.version,
    params: key.params,
    entity: key.entity,
    fingerprint: key.fingerprint,
    json: encoded.json,
    bytes: encoded.bytes,
    inputs: inputsText(fp) ?? canonicalJson(fp.inputs),
    producer: provenance?.producer ?? fallback?.producer ?? options.producer,
    run: provenance?.run ?? fallback?.run ?? options.run,
    createdAt: now,
    computeMs: provenance?.computeMs ?? fallback?.computeMs ?? null
  })

  const conflict = (spec: FeatureSpec.FeatureSpec<any>, key: Key) =>
    new ImmutableValueError({
      feature: spec.name,
      version: spec.version,
      entity: key.entity,
      fingerprint: key.fingerprint,
      message: `${FeatureSpec.label(spec)} for ${key.entity} (fingerprint ${key.fingerprint.slice(0, 12)}…) already holds a different value; values are immutable: invalidate it or bump the version`
    })

  const fromEither = <A, E>(e: Either.Either<A, E>): Effect.Effect<A, E> =>
    Either.isRight(e) ? Effect.succeed(e.right) : Effect.fail(e.left)

  const get: Service["get"] = (spec, entity, fp) =>
    Effect.gen(function* () {
      yield* ensure(spec)
      const bad = checkRef(spec, entity, fp)
      if (bad) return yield* bad
      const [row] = yield* backend.get(spec.name, spec.version, fp.params, [{ entity, fingerprint: fp.hash }])
      if (row === undefined) {
        counts.misses++
        return Option.none()
      }
      counts.hits++
      return Option.some(yield* fromEither(decode(spec, row)))
    })

  const getMany: Service["getMany"] = <A>(spec: FeatureSpec.FeatureSpec<A>, refs: ReadonlyArray<Ref>) =>
    Effect.gen(function* () {
      yield* ensure(spec)
      const groups = new Map<string, Array<number>>()
      for (let i = 0; i < refs.length; i++) {
        const ref = refs[i]!
        const bad = checkRef(spec, ref?.entity, ref?.fingerprint)
        if (bad) return yield* bad
        const group = groups.get(ref.fingerprint.params)
        if (group) group.push(i)
        else groups.set(ref.fingerprint.params, [i])
      }
      const out: Array<Option.Option<A>> = new Array(refs.length)
      for (const [params, indices] of groups) {
        const keys = indices.map((i) => ({ entity: refs[i]!.entity, fingerprint: refs[i]!.fingerprint.hash }))
        const hits = yield* backend.get(spec.name, spec.version, params, keys)
        // embeddings are decoded into one buffer for the whole batch: one allocation, not one per value
        const batch =
          spec.kind === "embedding" && littleEndian ? yield* fromEither(decodeEmbeddings(spec, hits)) : undefined
        for (let j = 0; j < indices.length; j++) {
          const row = hits[j]
          if (row === undefined) {
            counts.misses++
            out[indices[j]!] = Option.none()
            continue
          }
          counts.hits++
          if (batch !== undefined) {
            out[indices[j]!] = Option.some(batch[j] as A)
            continue
          }
          const value = decode(spec, row)
          if (Either.isLeft(value)) return yield* value.left
          out[indices[j]!] = Option.some(value.right)
        }
      }
      return out
    })

  const putMany: Service["putMany"] = <A>(
    spec: FeatureSpec.FeatureSpec<A>,
    items: ReadonlyArray<Item<A>>,
    provenance?: Provenance
  ) =>
    Effect.gen(function* () {
      yield* ensure(spec)
      const now = yield* Clock.currentTimeMillis
      const results: Array<Either.Either<void, InvalidValueError | ImmutableValueError>> = new Array(items.length)
      const rows: Array<NewRow> = []
      const rowIndex: Array<number> = []
      const encodedOf: Array<Encoded> = []
      // the first item of a key goes to the database; later items of the same key are compared with it
      const firstOfKey = new Map<string, number>()
      const duplicates: Array<[item: number, first: number]> = []
      for (let i = 0; i < items.length; i++) {
        const item = items[i]!
        const bad = checkRef(spec, item?.entity, item?.fingerprint)
        if (bad) {
          results[i] = Either.left(bad)
          continue
        }
        const encoded = encode(spec, item.entity, item.value)
        if (Either.isLeft(encoded)) {
          results[i] = Either.left(encoded.left)
          continue
        }
        const key = keyOf(spec, item.entity, item.fingerprint)
        // the fingerprint hash covers the parameters: entity and hash identify the key here
        const ks = `${key.entity}\u0000${key.fingerprint}`
        const first = firstOfKey.get(ks)
        encodedOf[i] = encoded.right
        if (first !== undefined) {
          duplicates.push([i, first])
          continue
        }
        firstOfKey.set(ks, i)
        rows.push(newRow(key, encoded.right, item.fingerprint, now, item, provenance))
        rowIndex.push(i)
      }
      const existing = rows.length === 0 ? [] : yield* backend.insert(rows)
      for (let r = 0; r < rows.length; r++) {
        const i = rowIndex[r]!
        const before = existing[r]
        results[i] =
          before === undefined || sameValue(encodedOf[i]!, before) ? stored : Either.left(conflict(spec, rows[r]!))
      }
      for (const [i, first] of duplicates) {
        const a = encodedOf[i]!
        const b = encodedOf[first]!
        const same = a.bytes !== null ? b.bytes !== null && bytesEqual(a.bytes, b.bytes) : a.json === b.json
        results[i] = !same
          ? Either.left(conflict(spec, keyOf(spec, items[i]!.entity, items[i]!.fingerprint)))
          : results[first]!
      }
      return results
    })

  const put: Service["put"] = (spec, entity, fingerprint, value, provenance) =>
    putMany(spec, [{ entity, fingerprint, value }], provenance).pipe(Effect.flatMap(([result]) => fromEither(result!)))

  const flight = SingleFlight.make({
    backend,
    owner,
    counts,
    leaseMs: options.leaseMs,
    pollMs: options.pollMs,
    newRow
  })

  const getOrCompute: Service["getOrCompute"] = <A, E, R>(
    spec: FeatureSpec.FeatureSpec<A>,
    entity: string,
    fp: Fingerprint.Fingerprint,
    compute: Effect.Effect<A, E, R>,
    provenance?: Omit<Provenance, "computeMs">
  ): Effect.Effect<A, E | ReadError | ImmutableValueError, R> =>
    Effect.gen(function* () {
      yield* ensure(spec)
      const bad = checkRef(spec, entity, fp)
      if (bad) return yield* bad
      return yield* flight.getOrCompute(spec, keyOf(spec, entity, fp), fp, compute, provenance)
    })

  const getOrComputeMany: Service["getOrComputeMany"] = <A, E, R>(
    spec: FeatureSpec.FeatureSpec<A>,
    items: ReadonlyArray<ComputeItem<A, E, R>>,
    manyOptions: ComputeManyOptions = {}
  ) =>
    Effect.gen(function* () {
      yield* ensure(spec)
      type Out = Exit.Exit<A, E | ReadError | ImmutableValueError>
      const out: Array<Out> = new Array(items.length)
      const checked: Array<SingleFlight.ManyItem<A, E, R>> = []
      const at: Array<number> = []
      for (let i = 0; i < items.length; i++) {
        const item = items[i]!
        const bad = checkRef(spec, item?.entity, item?.fingerprint)
        if (bad) out[i] = Exit.fail(bad)
        else {
          checked.push({ key: keyOf(spec, item.entity, item.fingerprint), fp: item.fingerprint, compute: item.compute })
          at.push(i)
        }
      }
      const provenance: Provenance = {
        ...(manyOptions.producer !== undefined ? { producer: manyOptions.producer } : {}),
        ...(manyOptions.run !== undefined ? { run: manyOptions.run } : {})
      }
      const results = yield* flight.getOrComputeMany(
        spec,
        checked,
        provenance,
        manyOptions.concurrency ?? "unbounded",
        manyOptions.flushMs ?? 1000,
        manyOptions.readFirst ?? true
      )
      results.forEach((r, j) => (out[at[j]!] = r))
      return out
    })

  const has: Service["has"] = (spec, entity, fp) =>
    Effect.gen(function* () {
      yield* ensure(spec)
      const bad = checkRef(spec, entity, fp)
      if (bad) return yield* bad
      const [row] = yield* backend.get(spec.name, spec.version, fp.params, [{ entity, fingerprint: fp.hash }])
      return row !== undefined
    })

  const resolveFeature = (
    feature: string | FeatureSpec.FeatureSpec<any> | undefined,
    version: number | undefined
  ): Effect.Effect<
    { feature?: string; version?: number },
    UnknownFeatureError | FeatureMismatchError | StorageError
  > => {
    if (feature === undefined) return Effect.succeed(version === undefined ? {} : { version })
    if (typeof feature !== "string") {
      return Effect.as(ensure(feature), { feature: feature.name, version: version ?? feature.version })
    }
    return backend.definitions(feature).pipe(
      Effect.flatMap((defs) => {
        if (defs.length === 0) {
          return Effect.fail(new UnknownFeatureError({ feature, message: `no feature named ${feature} is registered` }))
        }
        if (version !== undefined && !defs.some((d) => d.version === version)) {
          return Effect.fail(
            new UnknownFeatureError({
              feature,
              version,
              message: `feature ${feature} has no version ${version} (registered: ${defs.map((d) => d.version).join(", ")})`
            })
          )
        }
        return Effect.succeed(version === undefined ? { feature } : { feature, version })
      })
    )
  }

  const toLineage = (m: import("./internal/backend.js").MetaRow): Lineage => ({
    feature: m.feature,
    version: m.version,
    entity: m.entity,
    params: m.params,
    fingerprint: m.fingerprint,
    inputs: m.inputs as Fingerprint.CanonicalInputs,
    producer: m.producer,
    run: m.run,
    createdAt: m.createdAt,
    computeMs: m.computeMs,
    invalidatedAt: m.invalidatedAt,
    reason: m.reason
  })

  const list: Service["list"] = (selector) =>
    Effect.gen(function* () {
      const resolved = yield* resolveFeature(selector.feature, selector.version)
      const rows = yield* backend.meta({
        ...resolved,
        ...(selector.entity !== undefined ? { entity: selector.entity } : {}),
        ...(selector.fingerprint !== undefined
          ? { params: selector.fingerprint.params, fingerprint: selector.fingerprint.hash }
          : {}),
        includeInvalidated: selector.includeInvalidated ?? false
      })
      return rows.map(toLineage)
    })

  const history =
    (includeInvalidated: boolean) =>
    (spec: FeatureSpec.FeatureSpec<any>, entity: string, fp: Fingerprint.Fingerprint) =>
      Effect.gen(function* () {
        yield* ensure(spec)
        const bad = checkRef(spec, entity, fp)
        if (bad) return yield* bad
        const rows = yield* backend.meta({ ...keyOf(spec, entity, fp), includeInvalidated })
        return rows.map(toLineage)
      })

  const invalidate: Service["invalidate"] = (selector) =>
    Effect.gen(function* () {
      const resolved = yield* resolveFeature(selector.feature, selector.version)
      const now = yield* Clock.currentTimeMillis
      return yield* backend.invalidate(
        {
          ...resolved,
          ...(selector.entity !== undefined ? { entity: selector.entity } : {}),
          ...(selector.fingerprint !== undefined
            ? { params: selector.fingerprint.params, fingerprint: selector.fingerprint.hash }
            : {})
        },
        now,
        selector.reason ?? null
      )
    })

  return {
    register: ensure,
    get,
    getMany,
    put,
    putMany,
    getOrCompute,
    getOrComputeMany,
    has,
    list,
    lineage: (spec, entity, fp) =>
      Effect.map(history(false)(spec, entity, fp), (rows) => Option.fromNullable(rows.at(-1))),
    history: history(true),
    invalidate,
    counters: Effect.sync(() => ({ ...counts }))
  }
}

/**
 * Builds a store on the `Database` in context, applying its migrations
 * (`migrations_org_amber_store`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: Options): Effect.Effect<Service, StorageError | StoreConfigError, Database.Database> =>
  Effect.gen(function* () {
    const resolved = yield* resolveOptions(options)
    const db = yield* Database.Database
    const backend = yield* SqlBackend.make(db, { maxParameters: resolved.maxParameters })
    return fromBackend(backend, resolved)
  })

/**
 * Builds an in-memory store: the same behaviour within one process, nothing
 * persisted. For tests of code that uses the store.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (options?: Options): Effect.Effect<Service, StoreConfigError> =>
  Effect.map(resolveOptions(options), (resolved) => fromBackend(MemoryBackend.make(), resolved))

/**
 * The store on the `Database` in context (SQLite or PostgreSQL through `@org/storage`).
 *
 * @example
 * ```ts
 * const Store = FeatureStore.layer().pipe(Layer.provide(SqliteStorage.layer({ filename: "media.db" })))
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<FeatureStore, StorageError | StoreConfigError, Database.Database> =>
  Layer.effect(FeatureStore, make(options))

/**
 * An in-memory store, for tests of code that uses the store.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options?: Options): Layer.Layer<FeatureStore, StoreConfigError> =>
  Layer.effect(FeatureStore, makeMemory(options))

/**
 * `getOrCompute` on the store in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const getOrCompute = <A, E, R>(
  spec: FeatureSpec.FeatureSpec<A>,
  entity: string,
  fingerprint: Fingerprint.Fingerprint,
  compute: Effect.Effect<A, E, R>,
  provenance?: Omit<Provenance, "computeMs">
): Effect.Effect<A, E | ReadError | ImmutableValueError, R | FeatureStore> =>
  Effect.flatMap(FeatureStore, (store) => store.getOrCompute(spec, entity, fingerprint, compute, provenance))

/**
 * `getOrComputeMany` on the store in context.
 *
 * @example
 * ```ts
 * const values = yield* FeatureStore.getOrComputeMany(
 *   Brightness,
 *   artworks.map((a) => ({ entity: a.id, fingerprint: a.fp, compute: brightnessOf(a) })),
 *   { producer: "brightness@1", concurrency: 4 }
 * )
 * // one Exit per item: Exit.isSuccess(values[0]) ? values[0].value : values[0].cause
 * ```
 * @since 0.1.0
 * @category accessors
 */
export const getOrComputeMany = <A, E, R>(
  spec: FeatureSpec.FeatureSpec<A>,
  items: ReadonlyArray<ComputeItem<A, E, R>>,
  options?: ComputeManyOptions
): Effect.Effect<
  ReadonlyArray<Exit.Exit<A, E | ReadError | ImmutableValueError>>,
  FeatureMismatchError | StorageError,
  R | FeatureStore
> => Effect.flatMap(FeatureStore, (store) => store.getOrComputeMany(spec, items, options))

/**
 * `get` on the store in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const get = <A>(
  spec: FeatureSpec.FeatureSpec<A>,
  entity: string,
  fingerprint: Fingerprint.Fingerprint
): Effect.Effect<Option.Option<A>, ReadError, FeatureStore> =>
  Effect.flatMap(FeatureStore, (store) => store.get(spec, entity, fingerprint))

/**
 * `put` on the store in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const put = <A>(
  spec: FeatureSpec.FeatureSpec<A>,
  entity: string,
  fingerprint: Fingerprint.Fingerprint,
  value: A,
  provenance?: Provenance
): Effect.Effect<void, InvalidValueError | ImmutableValueError | FeatureMismatchError | StorageError, FeatureStore> =>
  Effect.flatMap(FeatureStore, (store) => store.put(spec, entity, fingerprint, value, provenance))
