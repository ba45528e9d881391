/**
 * Computing a value at most once per key: once per process (single-flight: callers of
 * the same key wait for one leader) and once across processes (the leader claims the
 * key in the backend with a lease it renews while computing; the others poll until the
 * value is stored or the lease runs out and one of them takes over).
 */
import { Cause, Clock, Deferred, Effect, Either, Exit } from "effect"
import type * as FeatureSpec from "../FeatureSpec.js"
import type { Provenance, ReadError } from "../FeatureStore.js"
import type * as Fingerprint from "../Fingerprint.js"
import type { ImmutableValueError } from "../StoreError.js"
import type { Backend, Key, NewRow } from "./backend.js"
import { keyString } from "./backend.js"
import { decode, type Encoded, encode, sameValue } from "./codec.js"

/** The store's counters, updated in place. */
export interface Counts {
  hits: number
  misses: number
  computations: number
  waits: number
  takeovers: number
}

export interface Options {
  readonly backend: Backend
  /** This store's claim owner. */
  readonly owner: string
  readonly counts: Counts
  readonly leaseMs: number
  readonly pollMs: number
  /** The row to insert for a computed value. */
  readonly newRow: (
    key: Key,
    encoded: Encoded,
    fp: Fingerprint.Fingerprint,
    now: number,
    provenance: Provenance | undefined,
    fallback: Provenance | undefined
  ) => NewRow
}

const fromEither = <A, E>(e: Either.Either<A, E>): Effect.Effect<A, E> =>
  Either.isRight(e) ? Effect.succeed(e.right) : Effect.fail(e.left)

export const make = ({ backend, counts, leaseMs, newRow, owner, pollMs }: Options) => {
  const inflight = new Map<string, Deferred.Deferred<unknown, unknown>>()

  const computeAndStore = <A, E, R>(
    spec: FeatureSpec.FeatureSpec<A>,
    key: Key,
    fp: Fingerprint.Fingerprint,
    compute: Effect.Effect<A, E, R>,
    provenance: Provenance | undefined
  ): Effect.Effect<A, E | ReadError | ImmutableValueError, R> =>
    Effect.gen(function* () {
      // keep the claim alive while computing
      yield* Effect.forkScoped(
        Effect.sleep(Math.floor(leaseMs / 3)).pipe(
          Effect.zipRight(
            Effect.flatMap(Clock.currentTimeMillis, (now) => backend.renew(key, owner, now + leaseMs)).pipe(
              Effect.ignore
            )
          ),
          Effect.forever
        )
      )
      counts.computations++
      const started = performance.now()
      const value = yield* compute
      const computeMs = performance.now() - started
      const encoded = encode(spec, key.entity, value)
      if (Either.isLeft(encoded)) return yield* encoded.left
      const now = yield* Clock.currentTimeMillis
      const [before] = yield* backend.insert(
        [newRow(key, encoded.right, fp, now, { ...provenance, computeMs }, undefined)],
        owner
      )
      if (before === undefined || sameValue(encoded.right, before)) return value
      // another process stored first (it took over a lease we could not renew): its value stands
      return yield* fromEither(decode(spec, before))
    }).pipe(
      Effect.scoped,
      Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : Effect.ignore(backend.release(key, owner))))
    )

  const leader = <A, E, R>(
    spec: FeatureSpec.FeatureSpec<A>,
    key: Key,
    fp: Fingerprint.Fingerprint,
    compute: Effect.Effect<A, E, R>,
    provenance: Provenance | undefined,
    lookedUp: boolean
  ): Effect.Effect<A, E | ReadError | ImmutableValueError, R> =>
    Effect.gen(function* () {
      if (!lookedUp) {
        const [row] = yield* backend.get(key.feature, key.version, key.params, [key])
        if (row !== undefined) {
          counts.hits++
          return yield* fromEither(decode(spec, row))
        }
      }
      counts.misses++
      let delay = 5
      while (true) {
        const now = yield* Clock.currentTimeMillis
        const claim = yield* backend.claim(key, owner, now, leaseMs)
        if (claim._tag === "Stored") {
          counts.waits++
          return yield* fromEither(decode(spec, claim.row))
        }
        if (claim._tag === "Claimed") {
          if (claim.takeover) counts.takeovers++
          return yield* computeAndStore(spec, key, fp, compute, provenance)
        }
        yield* Effect.sleep(Math.max(1, Math.min(delay, pollMs, claim.expiresAt - now + 1)))
        delay = Math.min(delay * 2, pollMs)
      }
    })

  /** `getOrCompute` of a key whose spec and reference were checked. */
  const getOrCompute = <A, E, R>(
    spec: FeatureSpec.FeatureSpec<A>,
    key: Key,
    fp: Fingerprint.Fingerprint,
    compute: Effect.Effect<A, E, R>,
    provenance: Provenance | undefined
  ): Effect.Effect<A, E | ReadError | ImmutableValueError, R> =>
    Effect.gen(function* () {
      const ks = keyString(key.feature, key.version, key.params, key.entity, key.fingerprint)
      // the warm path: no computation in flight here, and the value is stored
      let lookedUp = false
      if (!inflight.has(ks)) {
        const [row] = yield* backend.get(key.feature, key.version, key.params, [key])
        if (row !== undefined) {
          counts.hits++
          return yield* fromEither(decode(spec, row))
        }
        lookedUp = true
      }
      while (true) {
        const running = inflight.get(ks) as Deferred.Deferred<A, E | ReadError | ImmutableValueError> | undefined
        if (running !== undefined) {
          const exit = yield* Effect.exit(Deferred.await(running))
          if (Exit.isSuccess(exit)) {
            counts.misses++
            counts.waits++
            return exit.value
          }
          // the leader was interrupted: try again (as the leader, if no one else is)
          if (Cause.isInterruptedOnly(exit.cause)) continue
          counts.misses++
          return yield* exit
        }
        const deferred = yield* Deferred.make<A, E | ReadError | ImmutableValueError>()
        inflight.set(ks, deferred as Deferred.Deferred<unknown, unknown>)
        return yield* Effect.uninterruptibleMask((restore) =>
          restore(leader(spec, key, fp, compute, provenance, lookedUp)).pipe(
            Effect.onExit((exit) =>
              Effect.zipRight(
                Effect.sync(() => inflight.delete(ks)),
                Deferred.done(deferred, exit)
              )
            )
          )
        )
      }
    })

  return { getOrCompute }
}
