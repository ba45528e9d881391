/**
 * The `Annotations` service assembled from its parts (see `Annotations.ts` for the
 * public surface).
 */
import { Database } from "@org/storage"
import type { StorageError } from "@org/storage"
import { Deferred, Effect, PubSub, Stream } from "effect"
import type { Scope } from "effect"
import { type IndexEvent, Options, type Service } from "../Annotations.js"
import { decodeOptions, type MarkenConfigError, type MarkenFailureError } from "../MarkenError.js"
import { Registry } from "../Registry.js"
import type { Env } from "./env.js"
import { using } from "./tables.js"
import * as Indexes from "./indexes.js"
import * as Migrate from "./migrate.js"
import * as Operations from "./operations.js"
import * as Reads from "./reads.js"
import * as Runs from "./runs.js"
import * as Search from "./search.js"
import * as Statistics from "./statistics.js"
import * as Writes from "./writes.js"

export const make = (
  input: Options = {}
): Effect.Effect<Service, StorageError.StorageError | MarkenConfigError, Database.Database | Registry | Scope.Scope> =>
  Effect.gen(function* () {
    // decoded here, not at module level: Annotations.ts (which defines Options) imports this module
    const options = yield* decodeOptions("Annotations", Options)(input)
    const db = yield* Database.Database
    const registry = yield* Registry
    const clock = yield* Effect.clock
    const events = yield* PubSub.unbounded<IndexEvent>({ replay: 1024 })
    yield* Effect.addFinalizer(() => PubSub.shutdown(events))
    const use = using(db)
    const instance = yield* use("marken.instance", (k) =>
      k.selectFrom("marken_meta").select("value").where("key", "=", "instance").executeTakeFirstOrThrow()
    )
    const env: Env = {
      db,
      use,
      registry,
      caps: db.capabilities,
      nowMs: () => clock.unsafeCurrentTimeMillis(),
      tuning: {
        m: options.m ?? 16,
        efConstruction: options.efConstruction ?? 200,
        ef: options.ef ?? 64,
        exactThreshold: options.exactThreshold
      },
      syncInterval: options.syncIntervalMs ?? 1000,
      directory: options.indexDirectory,
      instance,
      emit: (event) => void events.unsafeOffer(event),
      statistics: Statistics.make(use)
    }
    const runs = Runs.make(env)
    yield* runs.loadCurrent
    const indexes = Indexes.make(env, runs)
    yield* Effect.addFinalizer(() => indexes.finalizer)
    const ops = Operations.make(env, runs, indexes)
    const reads = Reads.make(env)
    const writes = Writes.make(env, runs, indexes, ops, reads)
    const search = Search.make(env, runs, indexes, reads)
    const { migrate } = Migrate.make(env, ops, reads, writes)
    // index: "eager": every index of every registered type version, in the background
    const loaded = yield* Deferred.make<void, MarkenFailureError | StorageError.StorageError>()
    const eager = Effect.gen(function* () {
      const types = yield* registry.list()
      for (const def of types) {
        for (const field of Object.keys(def.vectors)) {
          yield* search
            .loadIndexStats({ type: def.name, version: def.version, field })
            .pipe(Effect.catchTags({ InvalidQueryError: () => Effect.void, UnknownTypeError: () => Effect.void }))
        }
      }
    })
    if (options.index === "eager") yield* Effect.forkScoped(Deferred.complete(loaded, eager))
    else yield* Deferred.succeed(loaded, undefined)
    return {
      start: ops.start,
      upsert: writes.upsert,
      finish: ops.finish,
      cancel: ops.cancel,
      operation: ops.operation,
      operations: ops.operations,
      create: writes.create,
      get: reads.get,
      update: writes.update,
      remove: writes.remove,
      removeMany: writes.removeMany,
      removeWhere: writes.removeWhere,
      query: reads.query,
      count: reads.count,
      search: search.search,
      pairs: search.pairs,
      migrate,
      decode: reads.decode,
      persist: indexes.persist,
      indexEvents: Stream.fromPubSub(events),
      ready: Deferred.await(loaded),
      loadIndex: search.loadIndexStats
    } satisfies Service
  })
