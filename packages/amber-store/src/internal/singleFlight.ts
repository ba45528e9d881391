/**
 * Computing a value at most once per key: once per process (single-flight: callers of
 * the same key wait for one leader) and once across processes (the leader claims the
 * key in the backend with a lease it renews while computing; the others poll until the
 * value is stored or the lease runs out and one of them takes over).
 */
import { Cause, Clock, Deferred, Effect, Either, Exit, FiberId } from "effect"
import type { StorageError as Storage } from "@org/storage"
import type * as FeatureSpec from "../FeatureSpec.js"
import type { Provenance, ReadError } from "../FeatureStore.js"
import type * as Fingerprint from "../Fingerprint.js"
import type { ImmutableValueError } from "../StoreError.js"
import type { Backend, Key, NewRow, ValueRow } from "./backend.js"
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

type StorageError = Storage.StorageError

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

  /**
   * `getOrCompute` for many keys (checked, without duplicates) in few round trips:
   * one read, one claim transaction for the misses, the computations, and one write
   * (which releases the claims) per `flushMs` of computing (at least one at the end).
   * Keys computing in this process already, and keys held by another process, go the
   * way of `getOrCompute` (waiting for the value, taking over an expired claim).
   */
  const getOrComputeMany = <A, E, R>(
    spec: FeatureSpec.FeatureSpec<A>,
    items: ReadonlyArray<ManyItem<A, E, R>>,
    provenance: Provenance | undefined,
    concurrency: number | "unbounded",
    flushMs: number,
    readFirst: boolean
  ): Effect.Effect<Array<Exit.Exit<A, E | ReadError | ImmutableValueError>>, StorageError, R> =>
    Effect.gen(function* () {
      type Out = Exit.Exit<A, E | ReadError | ImmutableValueError>
      const out: Array<Out | undefined> = new Array(items.length).fill(undefined)
      const decoded = (row: ValueRow): Out => {
        const value = decode(spec, row)
        return Either.isRight(value) ? Exit.succeed(value.right) : Exit.fail(value.left)
      }
      // the warm path: what is stored already, in one read per parameter hash
      const groups = new Map<string, Array<number>>()
      if (readFirst)
        items.forEach((item, i) => {
          const list = groups.get(item.key.params)
          if (list) list.push(i)
          else groups.set(item.key.params, [i])
        })
      for (const [params, indices] of groups) {
        const first = items[indices[0]!]!.key
        const rows = yield* backend.get(
          first.feature,
          first.version,
          params,
          indices.map((i) => items[i]!.key)
        )
        indices.forEach((i, j) => {
          const row = rows[j]
          if (row === undefined) return
          counts.hits++
          out[i] = decoded(row)
        })
      }
      // the misses: keys computing here already go the single-key way; the others are ours to claim
      const alone: Array<number> = []
      const mine: Array<{ readonly i: number; readonly ks: string; readonly deferred: Deferred.Deferred<A, any> }> = []
      for (let i = 0; i < items.length; i++) {
        if (out[i] !== undefined) continue
        const { key } = items[i]!
        const ks = keyString(key.feature, key.version, key.params, key.entity, key.fingerprint)
        if (inflight.has(ks)) alone.push(i)
        else {
          const deferred = Deferred.unsafeMake<A, any>(FiberId.none)
          inflight.set(ks, deferred as Deferred.Deferred<unknown, unknown>)
          mine.push({ i, ks, deferred })
        }
      }
      const single = Effect.forEach(
        alone,
        (i) =>
          Effect.map(
            Effect.exit(getOrCompute(spec, items[i]!.key, items[i]!.fp, items[i]!.compute, provenance)),
            (exit) => void (out[i] = exit)
          ),
        { concurrency: "unbounded", discard: true }
      )
      const batch = Effect.uninterruptibleMask((restore) => {
        // claims of ours not yet stored nor released (released when this ends in any way)
        const open = new Set<number>()
        return restore(
          Effect.gen(function* () {
            if (mine.length === 0) return
            const now = yield* Clock.currentTimeMillis
            const claims = yield* backend.claimMany(
              mine.map((m) => items[m.i]!.key),
              owner,
              now,
              leaseMs
            )
            const claimed: Array<number> = []
            const held: Array<number> = []
            claims.forEach((claim, j) => {
              const i = mine[j]!.i
              // a held key is counted by `leader`
              if (claim._tag !== "Held") counts.misses++
              if (claim._tag === "Stored") {
                counts.waits++
                out[i] = decoded(claim.row)
              } else if (claim._tag === "Claimed") {
                if (claim.takeover) counts.takeovers++
                claimed.push(i)
                open.add(i)
              } else held.push(i)
            })
            // keys held by another process: wait for their value (or take over) one by one
            const waiting = Effect.forEach(
              held,
              (i) =>
                Effect.map(
                  Effect.exit(leader(spec, items[i]!.key, items[i]!.fp, items[i]!.compute, provenance, true)),
                  (exit) => void (out[i] = exit)
                ),
              { concurrency: "unbounded", discard: true }
            )
            yield* Effect.all(
              [waiting, computeClaimed(spec, items, claimed, open, out, provenance, concurrency, flushMs)],
              {
                concurrency: 2,
                discard: true
              }
            )
          })
        ).pipe(
          Effect.onExit((exit) =>
            Effect.gen(function* () {
              if (open.size > 0) {
                yield* Effect.ignore(
                  backend.releaseMany(
                    [...open].map((i) => items[i]!.key),
                    owner
                  )
                )
              }
              for (const m of mine) {
                inflight.delete(m.ks)
                const result = out[m.i]
                // waiters of a key left undecided (the batch failed or was interrupted) try again
                yield* result !== undefined
                  ? Deferred.done(m.deferred, result as Exit.Exit<A, any>)
                  : Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)
                    ? Deferred.failCause(m.deferred, exit.cause)
                    : Deferred.interrupt(m.deferred)
              }
            })
          )
        )
      })
      yield* Effect.all([single, batch], { concurrency: 2, discard: true })
      return out as Array<Out>
    })

  /** Computes the claimed keys, `concurrency` at a time, storing the values about every `flushMs`. */
  const computeClaimed = <A, E, R>(
    spec: FeatureSpec.FeatureSpec<A>,
    items: ReadonlyArray<ManyItem<A, E, R>>,
    claimed: ReadonlyArray<number>,
    open: Set<number>,
    out: Array<Exit.Exit<A, E | ReadError | ImmutableValueError> | undefined>,
    provenance: Provenance | undefined,
    concurrency: number | "unbounded",
    flushMs: number
  ): Effect.Effect<void, StorageError, R> =>
    Effect.gen(function* () {
      if (claimed.length === 0) return
      // keep the claims alive while computing
      yield* Effect.forkScoped(
        Effect.sleep(Math.floor(leaseMs / 3)).pipe(
          Effect.zipRight(
            Effect.flatMap(Clock.currentTimeMillis, (now) =>
              backend.renewMany(
                [...open].map((i) => items[i]!.key),
                owner,
                now + leaseMs
              )
            ).pipe(Effect.ignore)
          ),
          Effect.forever
        )
      )
      const lock = Effect.unsafeMakeSemaphore(1)
      let pending: Array<{ readonly i: number; readonly value: A; readonly encoded: Encoded; readonly ms: number }> = []
      let lastFlush = performance.now()
      const flush = lock.withPermits(1)(
        Effect.gen(function* () {
          const batch = pending
          pending = []
          lastFlush = performance.now()
          if (batch.length === 0) return
          const now = yield* Clock.currentTimeMillis
          const before = yield* backend.insert(
            batch.map((p) =>
              newRow(items[p.i]!.key, p.encoded, items[p.i]!.fp, now, { ...provenance, computeMs: p.ms }, undefined)
            ),
            owner
          )
          batch.forEach((p, j) => {
            open.delete(p.i)
            const row = before[j]
            // another process stored first (it took over a lease we could not renew): its value stands
            if (row === undefined || sameValue(p.encoded, row)) out[p.i] = Exit.succeed(p.value)
            else {
              const value = decode(spec, row)
              out[p.i] = Either.isRight(value) ? Exit.succeed(value.right) : Exit.fail(value.left)
            }
          })
        })
      )
      const failed: Array<number> = []
      yield* Effect.forEach(
        claimed,
        (i) =>
          Effect.gen(function* () {
            counts.computations++
            const started = performance.now()
            const exit = yield* Effect.exit(items[i]!.compute)
            const ms = performance.now() - started
            if (Exit.isFailure(exit)) {
              out[i] = exit
              failed.push(i)
              return
            }
            const encoded = encode(spec, items[i]!.key.entity, exit.value)
            if (Either.isLeft(encoded)) {
              out[i] = Exit.fail(encoded.left)
              failed.push(i)
              return
            }
            pending.push({ i, value: exit.value, encoded: encoded.right, ms })
            if (performance.now() - lastFlush >= flushMs) yield* flush
          }),
        { concurrency, discard: true }
      )
      yield* flush
      if (failed.length > 0) {
        yield* backend.releaseMany(
          failed.map((i) => items[i]!.key),
          owner
        )
        for (const i of failed) open.delete(i)
      }
    }).pipe(Effect.scoped)

  return { getOrCompute, getOrComputeMany }
}

/** One key of `getOrComputeMany`, checked. */
export interface ManyItem<A, E, R> {
  readonly key: Key
  readonly fp: Fingerprint.Fingerprint
  readonly compute: Effect.Effect<A, E, R>
}
