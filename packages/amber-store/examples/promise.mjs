// The store from a service that does not use Effect: plain JavaScript and Promises.
// Run: node promise.mjs
import { Schema } from "effect"
import { FeatureSpec, FeatureStore, Fingerprint, StoreError } from "@org/amber-store/promise"

const Brightness = FeatureSpec.make({ name: "artwork.brightness", version: 1, entity: "artwork", value: Schema.Number })

const store = await FeatureStore.open({ sqlite: "features.db" }) // or { postgres: process.env.DATABASE_URL }
try {
  const fp = await Fingerprint.make({
    assets: { image: "9f2c5e3b7a1d4c6e8f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e" },
    params: { size: 224 }
  })
  // computed once (across concurrent callers and processes), then read from the store
  const mean = await store.getOrCompute(Brightness, "artwork-1", fp, async () => 0.42)
  console.log(mean, await store.get(Brightness, "artwork-1", fp), await store.counters())

  // failures are the tagged errors of the Effect API: instanceof works, _tag names them
  await store.put(Brightness, "artwork-1", fp, 0.5).catch((error) => {
    if (!(error instanceof StoreError.ImmutableValueError)) throw error
    console.log(`${error._tag}: ${error.message}`)
  })
} finally {
  await store.close()
}
