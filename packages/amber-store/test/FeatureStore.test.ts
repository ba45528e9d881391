import { describe, expect, it, layer } from "@effect/vitest"
import type { Vitest } from "@effect/vitest"
import { Cause, Deferred, Effect, Either, Exit, Fiber, Layer, Option, Schema } from "effect"
import { Database } from "@org/storage"
import { StorageTesting } from "@org/storage/testing"
import { FeatureSpec, FeatureStore, Fingerprint } from "@org/amber-store"
import { createHash } from "node:crypto"

const Brightness = FeatureSpec.make({
  name: "artwork.brightness",
  version: 1,
  entity: "artwork",
  value: Schema.Struct({ mean: Schema.Number, std: Schema.Number.pipe(Schema.nonNegative()) })
})
const Clip = FeatureSpec.embedding({ name: "artwork.clip", version: 1, entity: "artwork", dimension: 8 })
const Shots = FeatureSpec.make({
  name: "video.shots",
  version: 1,
  entity: "video",
  // the encoded side is JSON; the decoded side has Dates
  value: Schema.Array(Schema.Struct({ at: Schema.Date, score: Schema.Number }))
})

let seq = 0
const uid = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${(seq++).toString(36)}`
/** The content hash (bare hex sha256) of a text standing for a file's bytes. */
const hashOf = (bytes: string) => createHash("sha256").update(bytes).digest("hex")
const fp = (content: string, params?: Fingerprint.Json) =>
  Fingerprint.unsafeMake({ assets: { image: hashOf(content) }, params })
const vec = (seed: number, dim = 8) => Float32Array.from({ length: dim }, (_, i) => Math.sin(seed * 31 + i) * 0.5)
const Store = FeatureStore.FeatureStore

/** A compute effect that counts its runs. */
const counted = <A>(value: A, counter: { n: number }, delayMs = 0) =>
  Effect.sync(() => {
    counter.n++
  }).pipe(Effect.zipRight(delayMs > 0 ? Effect.sleep(delayMs) : Effect.void), Effect.as(value))

// every suite runs on the live clock: leases, polling and sleeps need real time
const conformance = (it: Vitest.MethodsNonLive<FeatureStore.FeatureStore, true>) => {
  it.effect("puts and gets a schema value; a missing key is None", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const a = uid("artwork")
      const f = fp(uid("sha"))
      expect(Option.isNone(yield* store.get(Brightness, a, f))).toBe(true)
      expect(yield* store.has(Brightness, a, f)).toBe(false)
      yield* store.put(Brightness, a, f, { mean: 0.25, std: 0.5 })
      expect(yield* store.get(Brightness, a, f)).toEqual(Option.some({ mean: 0.25, std: 0.5 }))
      expect(yield* store.has(Brightness, a, f)).toBe(true)
      // values go through their schema both ways
      const at = new Date("2024-01-02T03:04:05.678Z")
      yield* store.put(Shots, a, f, [{ at, score: 1 }])
      const shots = Option.getOrThrow(yield* store.get(Shots, a, f))
      expect(shots[0]!.at).toBeInstanceOf(Date)
      expect(shots[0]!.at.getTime()).toBe(at.getTime())
    })
  )

  it.effect("stores embeddings bit for bit and refuses wrong dimensions, NaN, infinities and non-vectors", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const a = uid("artwork")
      const f = fp(uid("sha"))
      const v = Float32Array.from([1e-38, -0, 3.4e38, -1.5, 0.1, Math.PI, -Math.E, 7])
      yield* store.put(Clip, a, f, v)
      const back = Option.getOrThrow(yield* store.get(Clip, a, f))
      expect(back).toBeInstanceOf(Float32Array)
      expect(Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(Buffer.from(v.buffer))).toBe(true)

      const b = uid("artwork")
      const bad: Array<[unknown, string]> = [
        [new Float32Array(7), "expected 8"],
        [Float32Array.from([1, 2, 3, 4, 5, 6, 7, Number.NaN]), "component 7 is NaN"],
        [Float32Array.from([Number.POSITIVE_INFINITY, 2, 3, 4, 5, 6, 7, 8]), "component 0 is Infinity"],
        [[1, 2, 3, 4, 5, 6, 7, 8], "must be a Float32Array, got Array"],
        [new Float64Array(8), "got Float64Array"]
      ]
      for (const [value, message] of bad) {
        const error = yield* Effect.flip(store.put(Clip, b, f, value as Float32Array))
        expect(error).toMatchObject({ _tag: "InvalidValueError", feature: "artwork.clip", version: 1, entity: b })
        expect(error.message).toContain(message)
      }
      expect(yield* store.has(Clip, b, f)).toBe(false)
      expect(yield* store.list({ entity: b, includeInvalidated: true })).toEqual([])
    })
  )

  it.effect("refuses a value failing its schema, an empty entity and a forged fingerprint, writing nothing", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const a = uid("artwork")
      const f = fp(uid("sha"))
      const e1 = yield* Effect.flip(store.put(Brightness, a, f, { mean: 1, std: -1 }))
      expect(e1).toMatchObject({ _tag: "InvalidValueError", entity: a, feature: "artwork.brightness" })
      expect(e1.message).toContain("std")
      const e2 = yield* Effect.flip(store.put(Brightness, a, f, { mean: "x" } as any))
      expect(e2._tag).toBe("InvalidValueError")
      const e3 = yield* Effect.flip(store.put(Brightness, "", f, { mean: 1, std: 1 }))
      expect(e3.message).toContain("entity id")
      const forged = { ...f, hash: "not-a-hash" }
      const e4 = yield* Effect.flip(store.put(Brightness, a, forged, { mean: 1, std: 1 }))
      expect(e4.message).toContain("Fingerprint.make")
      const e5 = yield* Effect.flip(store.get(Brightness, a, forged))
      expect(e5._tag).toBe("InvalidValueError")
      expect(yield* store.list({ entity: a, includeInvalidated: true })).toEqual([])
    })
  )

  it.effect("values are immutable: the same value again is fine, a different one is an ImmutableValueError error", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const a = uid("artwork")
      const f = fp(uid("sha"))
      yield* store.put(Brightness, a, f, { mean: 0.5, std: 0.1 })
      yield* store.put(Brightness, a, f, { std: 0.1, mean: 0.5 })
      const error = yield* Effect.flip(store.put(Brightness, a, f, { mean: 0.6, std: 0.1 }))
      expect(error).toMatchObject({
        _tag: "ImmutableValueError",
        feature: "artwork.brightness",
        entity: a,
        fingerprint: f.hash
      })
      yield* store.put(Clip, a, f, vec(1))
      yield* store.put(Clip, a, f, vec(1))
      const e2 = yield* Effect.flip(store.put(Clip, a, f, vec(2)))
      expect(e2._tag).toBe("ImmutableValueError")
      expect(yield* store.get(Brightness, a, f)).toEqual(Option.some({ mean: 0.5, std: 0.1 }))
      expect(Array.from(Option.getOrThrow(yield* store.get(Clip, a, f)))).toEqual(Array.from(vec(1)))
      expect(yield* store.history(Brightness, a, f)).toHaveLength(1)
    })
  )

  it.effect("putMany writes a batch in one go and answers per item; a bad item does not stop the others", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const e = Array.from({ length: 40 }, () => uid("artwork"))
      const f = fp(uid("sha"))
      yield* store.put(Clip, e[0]!, f, vec(100))
      const items: Array<FeatureStore.Item<Float32Array>> = e.map((entity, i) => ({
        entity,
        fingerprint: f,
        value: vec(i)
      }))
      items[0] = { entity: e[0]!, fingerprint: f, value: vec(0) } // conflicts with the stored vec(100)
      items[1] = { entity: e[1]!, fingerprint: f, value: new Float32Array(3) } // wrong dimension
      items.push({ entity: e[2]!, fingerprint: f, value: vec(2) }) // duplicate, same value
      items.push({ entity: e[3]!, fingerprint: f, value: vec(999) }) // duplicate, different value
      const results = yield* store.putMany(Clip, items, { producer: "batch@1", run: "run-7" })
      expect(results).toHaveLength(42)
      expect(Either.isLeft(results[0]!) && results[0].left._tag).toBe("ImmutableValueError")
      expect(Either.isLeft(results[1]!) && results[1].left._tag).toBe("InvalidValueError")
      expect(results.slice(2, 40).every(Either.isRight)).toBe(true)
      expect(Either.isRight(results[40]!)).toBe(true)
      expect(Either.isLeft(results[41]!) && results[41].left._tag).toBe("ImmutableValueError")
      const got = yield* store.getMany(
        Clip,
        e.map((entity) => ({ entity, fingerprint: f }))
      )
      expect(Array.from(Option.getOrThrow(got[0]!))).toEqual(Array.from(vec(100)))
      expect(Option.isNone(got[1]!)).toBe(true)
      for (let i = 2; i < 40; i++) expect(Array.from(Option.getOrThrow(got[i]!))).toEqual(Array.from(vec(i)))
      const lineage = Option.getOrThrow(yield* store.lineage(Clip, e[5]!, f))
      expect(lineage).toMatchObject({ producer: "batch@1", run: "run-7", entity: e[5], feature: "artwork.clip" })
    })
  )

  it.effect("getMany keeps the order of its refs across parameter groups and chunks", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const base = uid("artwork")
      const refs: Array<FeatureStore.Ref> = []
      const values: Array<Float32Array | undefined> = []
      for (let i = 0; i < 150; i++) {
        const fingerprint = fp(`${base}-content-${i}`, { size: i % 3 })
        refs.push({ entity: `${base}-${i}`, fingerprint })
        values.push(i % 4 === 0 ? undefined : vec(i))
      }
      const results = yield* store.putMany(
        Clip,
        refs.flatMap((r, i) => (values[i] ? [{ ...r, value: values[i] }] : []))
      )
      expect(results.every(Either.isRight)).toBe(true)
      const shuffled = refs.map((r, i) => [r, i] as const).reverse()
      const got = yield* store.getMany(
        Clip,
        shuffled.map(([r]) => r)
      )
      shuffled.forEach(([, i], j) => {
        if (values[i] === undefined) expect(Option.isNone(got[j]!)).toBe(true)
        else expect(Array.from(Option.getOrThrow(got[j]!))).toEqual(Array.from(values[i]!))
      })
      expect(yield* store.getMany(Clip, [])).toEqual([])
    })
  )

  it.effect("getOrCompute computes on a miss, not on a hit, and records lineage and counters", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const a = uid("artwork")
      const content = hashOf(uid("sha"))
      const f = yield* Fingerprint.make({ assets: { image: content }, params: { size: 224 } })
      const before = yield* store.counters
      const runs = { n: 0 }
      const v1 = yield* store.getOrCompute(Brightness, a, f, counted({ mean: 1, std: 2 }, runs), {
        producer: "brightness@1",
        run: "r-1"
      })
      const v2 = yield* store.getOrCompute(Brightness, a, f, counted({ mean: 9, std: 9 }, runs))
      expect(v1).toEqual({ mean: 1, std: 2 })
      expect(v2).toEqual({ mean: 1, std: 2 })
      expect(runs.n).toBe(1)
      const after = yield* store.counters
      expect(after.computations - before.computations).toBe(1)
      expect(after.hits - before.hits).toBe(1)
      expect(after.misses - before.misses).toBe(1)
      const lineage = Option.getOrThrow(yield* store.lineage(Brightness, a, f))
      expect(lineage).toMatchObject({
        feature: "artwork.brightness",
        version: 1,
        entity: a,
        fingerprint: f.hash,
        params: f.params,
        producer: "brightness@1",
        run: "r-1",
        invalidatedAt: null
      })
      expect(lineage.inputs).toEqual({ assets: { image: content }, upstream: [], params: { size: 224 } })
      expect(typeof lineage.createdAt).toBe("number")
      expect(lineage.computeMs).toBeGreaterThanOrEqual(0)
    })
  )

  it.effect("single-flight: concurrent getOrCompute on one key computes once", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const a = uid("artwork")
      const f = fp(uid("sha"))
      const runs = { n: 0 }
      const before = yield* store.counters
      const results = yield* Effect.all(
        Array.from({ length: 20 }, () => store.getOrCompute(Clip, a, f, counted(vec(5), runs, 50))),
        { concurrency: "unbounded" }
      )
      expect(runs.n).toBe(1)
      for (const r of results) expect(Array.from(r)).toEqual(Array.from(vec(5)))
      const after = yield* store.counters
      expect(after.computations - before.computations).toBe(1)
      // the others waited for it (or, arriving after it landed, found it stored)
      expect(after.waits - before.waits + (after.hits - before.hits)).toBe(19)
      expect(after.waits - before.waits).toBeGreaterThan(0)
    })
  )

  it.effect("a failing computation fails every waiter, stores nothing, and the next call computes again", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const a = uid("artwork")
      const f = fp(uid("sha"))
      const runs = { n: 0 }
      const failing = counted(undefined, runs, 30).pipe(Effect.zipRight(Effect.fail("model crashed" as const)))
      const exits = yield* Effect.all(
        Array.from({ length: 5 }, () => Effect.either(store.getOrCompute(Brightness, a, f, failing))),
        { concurrency: "unbounded" }
      )
      expect(runs.n).toBe(1)
      expect(exits.every((e) => Either.isLeft(e) && e.left === "model crashed")).toBe(true)
      expect(yield* store.has(Brightness, a, f)).toBe(false)
      // a value that fails the schema is refused the same way
      const bad = yield* Effect.flip(store.getOrCompute(Brightness, a, f, Effect.succeed({ mean: 1, std: -5 })))
      expect(bad._tag).toBe("InvalidValueError")
      expect(yield* store.has(Brightness, a, f)).toBe(false)
      // the claim was released: this computes at once
      expect(yield* store.getOrCompute(Brightness, a, f, counted({ mean: 1, std: 1 }, runs))).toEqual({
        mean: 1,
        std: 1
      })
      expect(runs.n).toBe(2)
    })
  )

  it.effect("getOrComputeMany: stored keys are read, missing ones computed once, failures stay per item", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const keys = Array.from({ length: 30 }, (_, i) => ({
        entity: uid("artwork"),
        fingerprint: fp(uid("sha"), i % 2 === 0 ? null : { size: 224 })
      }))
      // a third stored beforehand
      for (let i = 0; i < 30; i += 3)
        yield* store.put(Brightness, keys[i]!.entity, keys[i]!.fingerprint, { mean: i, std: 0 })
      const runs = { n: 0 }
      const before = yield* store.counters
      const results = yield* store.getOrComputeMany(
        Brightness,
        keys.map((k, i) => ({
          ...k,
          compute: (i === 1
            ? counted(undefined, runs).pipe(Effect.zipRight(Effect.fail("model crashed" as const)))
            : i === 2
              ? counted({ mean: 1, std: -1 }, runs)
              : counted({ mean: 100 + i, std: 1 }, runs)) as Effect.Effect<
            { mean: number; std: number },
            "model crashed"
          >
        })),
        { producer: "brightness@1", run: "r-many", concurrency: 4 }
      )
      expect(results).toHaveLength(30)
      expect(runs.n).toBe(20)
      results.forEach((exit, i) => {
        if (i === 1) expect(exit).toEqual(Exit.fail("model crashed"))
        else if (i === 2) {
          expect(Exit.isFailure(exit)).toBe(true)
          const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
          expect(Option.getOrThrow(error)).toMatchObject({ _tag: "InvalidValueError" })
        } else expect(exit).toEqual(Exit.succeed(i % 3 === 0 ? { mean: i, std: 0 } : { mean: 100 + i, std: 1 }))
      })
      const after = yield* store.counters
      expect(after.computations - before.computations).toBe(20)
      expect(after.hits - before.hits).toBe(10)
      expect(after.misses - before.misses).toBe(20)
      const lineage = Option.getOrThrow(yield* store.lineage(Brightness, keys[4]!.entity, keys[4]!.fingerprint))
      expect(lineage).toMatchObject({ producer: "brightness@1", run: "r-many", params: keys[4]!.fingerprint.params })
      expect(lineage.computeMs).toBeGreaterThanOrEqual(0)
      expect(yield* store.has(Brightness, keys[1]!.entity, keys[1]!.fingerprint)).toBe(false)
      expect(yield* store.has(Brightness, keys[2]!.entity, keys[2]!.fingerprint)).toBe(false)
      // again: only the two failures compute (their claims were released)
      const again = yield* store.getOrComputeMany(
        Brightness,
        keys.map((k) => ({ ...k, compute: counted({ mean: 7, std: 7 }, runs) }))
      )
      expect(runs.n).toBe(22)
      expect(again[1]).toEqual(Exit.succeed({ mean: 7, std: 7 }))
      expect(again[5]).toEqual(Exit.succeed({ mean: 105, std: 1 }))
      // a bad reference fails its item only; an empty batch is empty
      const bad = yield* store.getOrComputeMany(Brightness, [
        { entity: "", fingerprint: keys[0]!.fingerprint, compute: Effect.succeed({ mean: 0, std: 0 }) },
        { ...keys[0]!, compute: Effect.succeed({ mean: 0, std: 0 }) }
      ])
      expect(Exit.isFailure(bad[0]!)).toBe(true)
      expect(bad[1]).toEqual(Exit.succeed({ mean: 0, std: 0 }))
      expect(
        yield* store.getOrComputeMany(Brightness, [] as Array<FeatureStore.ComputeItem<never, never, never>>)
      ).toEqual([])
    })
  )

  it.effect("getOrComputeMany shares computations with getOrCompute and with duplicate keys", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const keys = Array.from({ length: 6 }, () => ({ entity: uid("artwork"), fingerprint: fp(uid("sha")) }))
      const runs = { n: 0 }
      const [many, singles] = yield* Effect.all(
        [
          store.getOrComputeMany(
            Clip,
            // every key twice
            [...keys, ...keys].map((k, i) => ({ ...k, compute: counted(vec(i % 6), runs, 40) }))
          ),
          Effect.forEach(keys, (k, i) => store.getOrCompute(Clip, k.entity, k.fingerprint, counted(vec(i), runs, 40)), {
            concurrency: "unbounded"
          })
        ],
        { concurrency: "unbounded" }
      )
      expect(runs.n).toBe(6)
      many.forEach((exit, i) => {
        expect(Exit.isSuccess(exit)).toBe(true)
        if (Exit.isSuccess(exit)) expect(Array.from(exit.value)).toEqual(Array.from(vec(i % 6)))
      })
      singles.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(vec(i))))
    })
  )

  it.effect("getOrComputeMany interrupted: its claims are released and a waiter computes", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const keys = Array.from({ length: 3 }, () => ({ entity: uid("artwork"), fingerprint: fp(uid("sha")) }))
      const started = yield* Deferred.make<void>()
      const batch = yield* Effect.fork(
        store.getOrComputeMany(
          Clip,
          keys.map((k) => ({ ...k, compute: Deferred.succeed(started, undefined).pipe(Effect.zipRight(Effect.never)) }))
        )
      )
      yield* Deferred.await(started)
      const follower = yield* Effect.fork(
        store.getOrCompute(Clip, keys[0]!.entity, keys[0]!.fingerprint, Effect.succeed(vec(3)))
      )
      yield* Effect.sleep(20)
      yield* Fiber.interrupt(batch)
      expect(Array.from(yield* Fiber.join(follower))).toEqual(Array.from(vec(3)))
      // the other keys' claims are gone too: a batch computes them at once
      const runs = { n: 0 }
      const again = yield* store.getOrComputeMany(
        Clip,
        keys.map((k, i) => ({ ...k, compute: counted(vec(10 + i), runs) }))
      )
      expect(runs.n).toBe(2)
      expect(again.every(Exit.isSuccess)).toBe(true)
    })
  )

  it.effect("an interrupted computation lets a waiter take over", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const a = uid("artwork")
      const f = fp(uid("sha"))
      const started = yield* Deferred.make<void>()
      const leader = yield* Effect.fork(
        store.getOrCompute(Clip, a, f, Deferred.succeed(started, undefined).pipe(Effect.zipRight(Effect.never)))
      )
      yield* Deferred.await(started)
      const follower = yield* Effect.fork(store.getOrCompute(Clip, a, f, Effect.succeed(vec(8))))
      yield* Effect.sleep(20)
      yield* Fiber.interrupt(leader)
      expect(Array.from(yield* Fiber.join(follower))).toEqual(Array.from(vec(8)))
    })
  )

  it.effect("a metadata-only change hits; a content change, a params change or a version bump misses", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const a = uid("artwork")
      const content = hashOf(uid("sha"))
      const runs = { n: 0 }
      // what an asset record might carry: only the content hash is an input
      const asset = { contentHash: content, title: "Poster", uploadedBy: "ana" }
      const fpOf = (x: typeof asset, params: Fingerprint.Json = { size: 224 }) =>
        Fingerprint.make({ assets: { image: x.contentHash }, params })
      yield* store.getOrCompute(Brightness, a, yield* fpOf(asset), counted({ mean: 1, std: 1 }, runs))
      const renamed = { ...asset, title: "Poster (final)", uploadedBy: "bo" }
      yield* store.getOrCompute(Brightness, a, yield* fpOf(renamed), counted({ mean: 2, std: 2 }, runs))
      expect(runs.n).toBe(1)
      const changed = { ...asset, contentHash: hashOf(`${content}-v2`) }
      yield* store.getOrCompute(Brightness, a, yield* fpOf(changed), counted({ mean: 3, std: 3 }, runs))
      expect(runs.n).toBe(2)
      yield* store.getOrCompute(Brightness, a, yield* fpOf(asset, { size: 512 }), counted({ mean: 4, std: 4 }, runs))
      expect(runs.n).toBe(3)
      const V2 = FeatureSpec.make({ ...Brightness, version: 2, value: Brightness.value })
      const v2 = yield* store.getOrCompute(V2, a, yield* fpOf(asset), counted({ mean: 5, std: 5 }, runs))
      expect(runs.n).toBe(4)
      expect(v2).toEqual({ mean: 5, std: 5 })
      // and the version 1 value is still there
      expect(yield* store.get(Brightness, a, yield* fpOf(asset))).toEqual(Option.some({ mean: 1, std: 1 }))
    })
  )

  it.effect("an upstream change reaches its dependents through their fingerprints", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const a = uid("artwork")
      const runs = { n: 0 }
      const clipFp = (content: string) => fp(content)
      const brightnessFp = (content: string) =>
        Fingerprint.make({ upstream: [Fingerprint.upstream(Clip, a, clipFp(content))], params: { k: 3 } })
      yield* store.getOrCompute(Brightness, a, yield* brightnessFp("c1"), counted({ mean: 1, std: 0 }, runs))
      yield* store.getOrCompute(Brightness, a, yield* brightnessFp("c1"), counted({ mean: 1, std: 0 }, runs))
      expect(runs.n).toBe(1)
      yield* store.getOrCompute(Brightness, a, yield* brightnessFp("c2"), counted({ mean: 2, std: 0 }, runs))
      expect(runs.n).toBe(2)
      const lineage = Option.getOrThrow(yield* store.lineage(Brightness, a, yield* brightnessFp("c2")))
      expect(lineage.inputs.upstream).toEqual([
        { feature: "artwork.clip", version: 1, entity: a, fingerprint: clipFp("c2").hash }
      ])
    })
  )

  it.effect("invalidate marks values, keeps their history, and lets them be recomputed", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const a = uid("artwork")
      const f = fp(uid("sha"))
      const runs = { n: 0 }
      yield* store.getOrCompute(Brightness, a, f, counted({ mean: 1, std: 1 }, runs))
      yield* store.put(Clip, a, f, vec(1))
      const n = yield* store.invalidate({ feature: Brightness, entity: a, reason: "bad model" })
      expect(n).toBe(1)
      expect(yield* store.invalidate({ feature: Brightness, entity: a })).toBe(0)
      expect(Option.isNone(yield* store.get(Brightness, a, f))).toBe(true)
      expect(Option.isSome(yield* store.get(Clip, a, f))).toBe(true)
      // a different value is now allowed under the key; the old one stays as history
      expect(yield* store.getOrCompute(Brightness, a, f, counted({ mean: 2, std: 2 }, runs))).toEqual({
        mean: 2,
        std: 2
      })
      expect(runs.n).toBe(2)
      const history = yield* store.history(Brightness, a, f)
      expect(history.map((h) => [h.invalidatedAt !== null, h.reason])).toEqual([
        [true, "bad model"],
        [false, null]
      ])
      expect(yield* store.list({ entity: a, feature: "artwork.brightness" })).toHaveLength(1)
      expect(yield* store.list({ entity: a, feature: "artwork.brightness", includeInvalidated: true })).toHaveLength(2)
      // invalidating by feature name and version
      expect(yield* store.invalidate({ feature: "artwork.clip", version: 1, entity: a })).toBe(1)
      expect(Option.isNone(yield* store.get(Clip, a, f))).toBe(true)
    })
  )

  it.effect("lists by entity or by feature; an unknown feature or version is an UnknownFeatureError error", () =>
    Effect.gen(function* () {
      const store = yield* Store
      const a = uid("artwork")
      const b = uid("artwork")
      const f = fp(uid("sha"))
      yield* store.put(Brightness, a, f, { mean: 1, std: 1 })
      yield* store.put(Clip, a, f, vec(1))
      yield* store.put(Clip, b, f, vec(2))
      const byEntity = yield* store.list({ entity: a })
      expect(byEntity.map((l) => l.feature).sort()).toEqual(["artwork.brightness", "artwork.clip"])
      const byFeature = yield* store.list({ feature: Clip })
      expect(byFeature.filter((l) => l.entity === a || l.entity === b)).toHaveLength(2)
      expect(byFeature.every((l) => l.feature === "artwork.clip")).toBe(true)
      const unknown = yield* Effect.flip(store.list({ feature: "no.such.feature" }))
      expect(unknown).toMatchObject({ _tag: "UnknownFeatureError", feature: "no.such.feature" })
      const version = yield* Effect.flip(store.list({ feature: "artwork.clip", version: 9 }))
      expect(version).toMatchObject({ _tag: "UnknownFeatureError", feature: "artwork.clip", version: 9 })
      const inv = yield* Effect.flip(store.invalidate({ feature: "no.such.feature" }))
      expect(inv._tag).toBe("UnknownFeatureError")
    })
  )

  it.effect("a spec redefined under the same name and version is a FeatureMismatchError", () =>
    Effect.gen(function* () {
      const store = yield* Store
      yield* store.register(Clip)
      const Wider = FeatureSpec.embedding({ name: "artwork.clip", version: 1, entity: "artwork", dimension: 16 })
      const error = yield* Effect.flip(store.put(Wider, uid("artwork"), fp("x"), new Float32Array(16)))
      expect(error).toMatchObject({ _tag: "FeatureMismatchError", feature: "artwork.clip", version: 1 })
      expect(error.message).toContain("dimension 8")
      const Other = FeatureSpec.make({ name: "artwork.clip", version: 1, entity: "artwork", value: Schema.String })
      expect((yield* Effect.flip(store.get(Other, "a", fp("x"))))._tag).toBe("FeatureMismatchError")
    })
  )
}

describe("FeatureStore conformance on memory", () => {
  layer(FeatureStore.layerMemory({ leaseMs: 1000 }), { excludeTestServices: true })("memory", (it) => conformance(it))
})

const sqlOptions = { leaseMs: 1000, maxParameters: 64 } as const

for (const adapter of StorageTesting.adapters()) {
  if (adapter.skip) {
    describe.skip(`FeatureStore conformance on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    console.warn(`[amber-store] ${adapter.skip}`)
    continue
  }
  const stack = FeatureStore.layer(sqlOptions).pipe(Layer.provideMerge(adapter.layer))

  layer(stack, { excludeTestServices: true })(`FeatureStore conformance on ${adapter.name}`, (it) => {
    conformance(it)

    it.effect("stores embeddings as bytes, never JSON", () =>
      Effect.gen(function* () {
        const store = yield* Store
        const a = uid("artwork")
        const f = fp(uid("sha"))
        yield* store.put(Clip, a, f, vec(3))
        const row = yield* Database.use("peek", (k) =>
          k
            .selectFrom("amber_values")
            .select(["value_json", "value_bytes"])
            .where("entity", "=", a)
            .executeTakeFirstOrThrow()
        )
        expect(row.value_json).toBeNull()
        expect(Buffer.isBuffer(row.value_bytes)).toBe(true)
        expect(row.value_bytes.byteLength).toBe(32)
      })
    )

    it.effect("two stores on one database compute a key once", () =>
      Effect.gen(function* () {
        const one = yield* Store
        const two = yield* FeatureStore.make(sqlOptions)
        const keys = Array.from({ length: 10 }, () => ({ entity: uid("artwork"), fingerprint: fp(uid("sha")) }))
        const runs = { n: 0 }
        const work = (store: FeatureStore.Service) =>
          Effect.forEach(keys, (k, i) => store.getOrCompute(Clip, k.entity, k.fingerprint, counted(vec(i), runs, 10)), {
            concurrency: 4
          })
        const [r1, r2] = yield* Effect.all([work(one), work(two)], { concurrency: 2 })
        expect(runs.n).toBe(10)
        r1.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(vec(i))))
        r2.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(vec(i))))
        const c1 = yield* one.counters
        const c2 = yield* two.counters
        expect(c2.computations + c2.waits + c2.hits).toBe(10)
        expect(c1.computations + c2.computations).toBeGreaterThanOrEqual(10)
      })
    )

    it.effect("two stores running getOrComputeMany on the same keys compute each once, and leave no claim", () =>
      Effect.gen(function* () {
        // leases long enough that a loaded machine does not make them run out (takeovers are tested below)
        const one = yield* FeatureStore.make({ ...sqlOptions, leaseMs: 10_000 })
        const two = yield* FeatureStore.make({ ...sqlOptions, leaseMs: 10_000 })
        // 40 keys: more than one statement's worth at 64 parameters
        const keys = Array.from({ length: 40 }, () => ({ entity: uid("artwork"), fingerprint: fp(uid("sha")) }))
        const runs = { n: 0 }
        const work = (store: FeatureStore.Service, offset: number) =>
          store.getOrComputeMany(
            Clip,
            [...keys.slice(offset), ...keys.slice(0, offset)].map((k) => ({
              ...k,
              compute: counted(vec(keys.indexOf(k)), runs, 5)
            })),
            { concurrency: 4, flushMs: 20 }
          )
        const [r1, r2] = yield* Effect.all([work(one, 0), work(two, 20)], { concurrency: 2 })
        expect(runs.n).toBe(40)
        r1.forEach((exit, i) => expect(exit).toEqual(Exit.succeed(vec(i))))
        r2.forEach((exit, i) => expect(exit).toEqual(Exit.succeed(vec((i + 20) % 40))))
        const claims = yield* Database.use("claims", (k) =>
          k
            .selectFrom("amber_claims")
            .select("entity")
            .where(
              "entity",
              "in",
              keys.map((k) => k.entity)
            )
            .execute()
        )
        expect(claims).toEqual([])
      })
    )

    it.effect("getOrComputeMany over 1,000 keys at the default parameter limit", () =>
      Effect.gen(function* () {
        const store = yield* FeatureStore.make({ leaseMs: 10_000 })
        const keys = Array.from({ length: 1000 }, () => ({ entity: uid("artwork"), fingerprint: fp(uid("sha")) }))
        const runs = { n: 0 }
        const first = yield* store.getOrComputeMany(
          Brightness,
          keys.map((k, i) => ({ ...k, compute: counted({ mean: i, std: 0 }, runs) }))
        )
        const again = yield* store.getOrComputeMany(
          Brightness,
          keys.map((k) => ({ ...k, compute: counted({ mean: -1, std: 0 }, runs) }))
        )
        expect(runs.n).toBe(1000)
        first.forEach((exit, i) => expect(exit).toEqual(Exit.succeed({ mean: i, std: 0 })))
        again.forEach((exit, i) => expect(exit).toEqual(Exit.succeed({ mean: i, std: 0 })))
      })
    )

    it.effect("getOrComputeMany takes over a dead holder's claim after its lease", () =>
      Effect.gen(function* () {
        const store = yield* FeatureStore.make({ leaseMs: 200 })
        const keys = Array.from({ length: 3 }, () => ({ entity: uid("artwork"), fingerprint: fp(uid("sha")) }))
        const until = Date.now() + 400
        yield* Database.use("stale-claim", (k) =>
          k
            .insertInto("amber_claims")
            .values({
              feature: Clip.name,
              version: Clip.version,
              params: keys[1]!.fingerprint.params,
              entity: keys[1]!.entity,
              fingerprint: keys[1]!.fingerprint.hash,
              owner: "dead-host:1:0",
              claimed_at: Date.now(),
              expires_at: until
            })
            .execute()
        )
        const runs = { n: 0 }
        const results = yield* store.getOrComputeMany(
          Clip,
          keys.map((k, i) => ({ ...k, compute: counted(vec(i), runs) }))
        )
        expect(Date.now()).toBeGreaterThanOrEqual(until)
        expect(runs.n).toBe(3)
        results.forEach((exit, i) => expect(exit).toEqual(Exit.succeed(vec(i))))
        expect((yield* store.counters).takeovers).toBe(1)
      })
    )

    it.effect("a claim whose holder died is taken over after its lease", () =>
      Effect.gen(function* () {
        const store = yield* FeatureStore.make({ leaseMs: 200 })
        const a = uid("artwork")
        const f = fp(uid("sha"))
        // a holder that will never finish: its claim row, as a crashed process leaves it
        const until = Date.now() + 400
        yield* Database.use("stale-claim", (k) =>
          k
            .insertInto("amber_claims")
            .values({
              feature: Clip.name,
              version: Clip.version,
              params: f.params,
              entity: a,
              fingerprint: f.hash,
              owner: "dead-host:1:0",
              claimed_at: Date.now(),
              expires_at: until
            })
            .execute()
        )
        const runs = { n: 0 }
        const v = yield* store.getOrCompute(Clip, a, f, counted(vec(4), runs))
        expect(Date.now()).toBeGreaterThanOrEqual(until)
        expect(runs.n).toBe(1)
        expect(Array.from(v)).toEqual(Array.from(vec(4)))
        expect((yield* store.counters).takeovers).toBe(1)
        const claims = yield* Database.use("claims", (k) =>
          k.selectFrom("amber_claims").selectAll().where("entity", "=", a).execute()
        )
        expect(claims).toEqual([])
      })
    )
  })
}

describe("Fingerprint", () => {
  const [h1, h2, h3] = ["1", "2", "3"].map(hashOf)

  it.effect("is canonical: key order and asset order do not matter; content and params do", () =>
    Effect.gen(function* () {
      const a = yield* Fingerprint.make({
        assets: { image: h1, audio: h2 },
        params: { b: [1, 2], a: { y: 1, x: 2 } }
      })
      const b = yield* Fingerprint.make({
        params: { a: { x: 2, y: 1 }, b: [1, 2] },
        assets: { audio: h2, image: h1 }
      })
      expect(a.hash).toBe(b.hash)
      expect(a.params).toBe(b.params)
      expect(a.hash).toMatch(/^[0-9a-f]{64}$/)
      const set1 = yield* Fingerprint.make({ assets: [h2, h1, h1] })
      const set2 = yield* Fingerprint.make({ assets: [h1, h2] })
      expect(set1.hash).toBe(set2.hash)
      const c = yield* Fingerprint.make({
        assets: { image: h1, audio: h3 },
        params: { b: [1, 2], a: { y: 1, x: 2 } }
      })
      expect(c.hash).not.toBe(a.hash)
      expect(c.params).toBe(a.params)
      const d = yield* Fingerprint.make({
        assets: { image: h1, audio: h2 },
        params: { b: [2, 1], a: { y: 1, x: 2 } }
      })
      expect(d.hash).not.toBe(a.hash)
      expect(d.params).not.toBe(a.params)
      // a role is part of the input: the same hash under another role differs
      const e = yield* Fingerprint.make({
        assets: { poster: h1, audio: h2 },
        params: { b: [1, 2], a: { y: 1, x: 2 } }
      })
      expect(e.hash).not.toBe(a.hash)
      // upstream order does not matter
      const u1 = { feature: "f", version: 1, entity: "e1", fingerprint: "x" }
      const u2 = { feature: "f", version: 1, entity: "e2", fingerprint: "y" }
      expect((yield* Fingerprint.make({ upstream: [u1, u2] })).hash).toBe(
        (yield* Fingerprint.make({ upstream: [u2, u1] })).hash
      )
      // deterministic across runs: a pinned value
      expect((yield* Fingerprint.make({})).hash).toBe(Fingerprint.unsafeMake({ params: null }).hash)
    })
  )

  it.effect("refuses inputs that cannot be hashed canonically", () =>
    Effect.gen(function* () {
      const nan = yield* Effect.flip(Fingerprint.make({ params: { t: Number.NaN } }))
      expect(nan).toMatchObject({ _tag: "FingerprintError", path: "params.t" })
      const date = yield* Effect.flip(Fingerprint.make({ params: { at: new Date() } as any }))
      expect(date.message).toContain("Date")
      const empty = yield* Effect.flip(Fingerprint.make({ assets: { image: "" } }))
      expect(empty.path).toBe("assets.image")
      // an asset hash is a ContentHash: the bare lowercase hex sha256, nothing else
      for (const bad of [`sha256:${h1}`, h1.toUpperCase(), h1.slice(1), "h1"]) {
        const refused = yield* Effect.flip(Fingerprint.make({ assets: { image: bad } }))
        expect(refused).toMatchObject({ _tag: "FingerprintError", path: "assets.image" })
        expect(refused.message).toContain("64 lowercase hex digits")
      }
      const inSet = yield* Effect.flip(Fingerprint.make({ assets: [h1, "sha256:x"] }))
      expect(inSet.path).toBe("assets[1]")
      const big = yield* Effect.flip(Fingerprint.make({ params: [1n] as any }))
      expect(big.message).toContain("bigint")
      const up = yield* Effect.flip(
        Fingerprint.make({ upstream: [{ feature: "f", version: 0, entity: "e", fingerprint: "x" }] })
      )
      expect(up.path).toBe("upstream[0].version")
    })
  )
})

describe("FeatureSpec", () => {
  it("refuses malformed specs with a FeatureSpecError naming the feature", () => {
    expect(() => FeatureSpec.embedding({ name: "x", version: 1, entity: "artwork", dimension: 0 })).toThrow(
      expect.objectContaining({ _tag: "FeatureSpecError", feature: "x" })
    )
    expect(() => FeatureSpec.make({ name: "x", version: 0, entity: "artwork", value: Schema.Number })).toThrow(
      /version/
    )
    expect(() => FeatureSpec.make({ name: "", version: 1, entity: "artwork", value: Schema.Number })).toThrow(/name/)
    expect(() => FeatureSpec.make({ name: "bad name", version: 1, entity: "title", value: Schema.Number })).toThrow(
      expect.objectContaining({ _tag: "FeatureSpecError" })
    )
    expect(Clip).toMatchObject({ kind: "embedding", dimension: 8, entity: "artwork" })
  })
})
