// getOrCompute through the installed @org/amber-store, on a SQLite file (better-sqlite3) and on PostgreSQL (pg,
// ORG_TEST_PG_URL) in a fresh schema that is dropped afterwards: concurrent calls compute once, a second store on
// the same database reads the value without computing, and an embedding round-trips as float32 bytes.
// Without ORG_TEST_PG_URL the PostgreSQL part is skipped with a message, except under CI where that is a failure.
import { Effect, Option, Schema } from "effect"
import { StorageTesting } from "@org/storage/testing"
import { FeatureSpec, FeatureStore, Fingerprint } from "@org/amber-store"

const Brightness = FeatureSpec.make({
  name: "artwork.brightness",
  version: 1,
  entity: "artwork",
  value: Schema.Struct({ mean: Schema.Number, std: Schema.Number })
})
const Clip = FeatureSpec.embedding({ name: "artwork.clip", version: 1, entity: "artwork", dimension: 4 })

const check = (storage) =>
  Effect.gen(function* () {
    let computed = 0
    const fp = yield* Fingerprint.make({ assets: { image: "ab".repeat(32) }, params: { size: 224 } })
    const compute = Effect.sync(() => {
      computed++
      return { mean: 0.42, std: 0.17 }
    }).pipe(Effect.delay("20 millis"))
    const first = yield* Effect.gen(function* () {
      const store = yield* FeatureStore.FeatureStore
      const values = yield* Effect.all(
        Array.from({ length: 4 }, () => store.getOrCompute(Brightness, "artwork-1", fp, compute)),
        { concurrency: "unbounded" }
      )
      const vector = new Float32Array([0.5, -0.25, 1, 2])
      yield* store.getOrCompute(Clip, "artwork-1", fp, Effect.succeed(vector))
      const clip = yield* store.get(Clip, "artwork-1", fp)
      if (Option.isNone(clip) || Array.from(clip.value).join() !== "0.5,-0.25,1,2") throw new Error("embedding lost")
      return values
    }).pipe(Effect.provide(FeatureStore.layer()))
    if (computed !== 1 || first.some((v) => v.mean !== 0.42)) {
      throw new Error(`4 concurrent getOrCompute calls computed ${computed} times: ${JSON.stringify(first)}`)
    }
    // a fresh store on the same database: stored, not computed again
    const again = yield* Effect.flatMap(FeatureStore.FeatureStore, (store) =>
      Effect.zip(store.getOrCompute(Brightness, "artwork-1", fp, compute), store.counters)
    ).pipe(Effect.provide(FeatureStore.layer()))
    if (computed !== 1 || again[0].mean !== 0.42 || again[1].hits !== 1) {
      throw new Error(`a second store computed again (${computed}) or missed: ${JSON.stringify(again[1])}`)
    }
    return `${storage}: 4 concurrent getOrCompute -> 1 computation; a second store hit it; embedding round trip`
  })

const url = process.env.ORG_TEST_PG_URL
if (!url) {
  if (process.env.CI) throw new Error("ORG_TEST_PG_URL is not set under CI: the PostgreSQL part must run")
  console.log("SKIPPED amber-store on PostgreSQL: ORG_TEST_PG_URL is not set")
}
// a temporary SQLite file, and PostgreSQL in a fresh schema dropped at the end (both from @org/storage/testing)
for (const [name, layer] of [
  ["SQLite file", StorageTesting.sqliteFile],
  ...(url ? [["PostgreSQL (fresh schema, dropped)", StorageTesting.pgFresh(url)]] : [])
]) {
  console.log(`amber-store ${await Effect.runPromise(check(name).pipe(Effect.provide(layer)))}`)
}
