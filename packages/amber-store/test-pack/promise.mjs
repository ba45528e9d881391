// The Promise entry (@org/amber-store/promise) from plain JavaScript, as a service that does not use Effect calls
// it: open a store on a SQLite file (and on PostgreSQL when ORG_TEST_PG_URL is set), getOrCompute computes once for
// concurrent callers, get/put/lineage/counters resolve plain values, and every rejection is the tagged error class
// itself (instanceof works, _tag is set; never a FiberFailure): ImmutableValueError, InvalidValueError,
// FingerprintError, StoreConfigError, StorageConfigError, a compute function's own error, a call after close.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Schema } from "effect"
import { StorageError } from "@org/storage"
import { FeatureSpec, FeatureStore, Fingerprint, StoreError } from "@org/amber-store/promise"

const Brightness = FeatureSpec.make({
  name: "artwork.brightness",
  version: 1,
  entity: "artwork",
  value: Schema.Struct({ mean: Schema.Number, std: Schema.Number })
})
const Clip = FeatureSpec.embedding({ name: "artwork.clip", version: 1, entity: "artwork", dimension: 3 })

/** The rejection of a promise (fails when it resolves). */
const rejection = async (promise, what) => {
  try {
    const value = await promise
    throw new Error(`${what} resolved with ${JSON.stringify(value)} instead of rejecting`)
  } catch (error) {
    return error
  }
}
/** A rejection that must be an instance of `Class`, with `_tag` equal to its name. */
const expectTagged = async (promise, Class, what) => {
  const error = await rejection(promise, what)
  // a bundler may rename a class (`_StorageError`); its tag is the name it was declared with
  const tag = Class.name.replace(/^_+/, "")
  if (!(error instanceof Class) || error._tag !== tag || String(error.name).includes("FiberFailure")) {
    throw new Error(`${what}: expected ${tag}, got ${error?.constructor?.name} ${error?._tag} ${error}`)
  }
  return error
}

const check = async (name, options) => {
  const store = await FeatureStore.open({ ...options, producer: "pack-test@1" })
  try {
    let computed = 0
    const fp = await Fingerprint.make({ assets: { image: "ab".repeat(32) }, params: { size: 224 } })
    const compute = async () => {
      computed++
      await new Promise((resolve) => setTimeout(resolve, 20))
      return { mean: 0.42, std: 0.17 }
    }
    const values = await Promise.all(
      Array.from({ length: 4 }, () => store.getOrCompute(Brightness, "artwork-1", fp, compute))
    )
    if (computed !== 1 || values.some((v) => v.mean !== 0.42)) {
      throw new Error(`4 concurrent getOrCompute calls computed ${computed} times: ${JSON.stringify(values)}`)
    }
    const got = await store.get(Brightness, "artwork-1", fp)
    if (got?.std !== 0.17) throw new Error(`get gave ${JSON.stringify(got)}`)
    if ((await store.get(Brightness, "artwork-2", fp)) !== undefined)
      throw new Error("get of a missing key is not undefined")
    const lineage = await store.lineage(Brightness, "artwork-1", fp)
    if (lineage?.producer !== "pack-test@1") throw new Error(`lineage: ${JSON.stringify(lineage)}`)
    await store.put(Clip, "artwork-1", fp, new Float32Array([0.5, -0.25, 1]))
    const [clip, none] = await store.getMany(Clip, [
      { entity: "artwork-1", fingerprint: fp },
      { entity: "artwork-9", fingerprint: fp }
    ])
    if (Array.from(clip).join() !== "0.5,-0.25,1" || none !== undefined) throw new Error("getMany lost the embedding")

    // rejections are the tagged classes themselves
    const immutable = await expectTagged(
      store.put(Brightness, "artwork-1", fp, { mean: 1, std: 1 }),
      StoreError.ImmutableValueError,
      "a different value under a stored key"
    )
    await expectTagged(
      store.put(Clip, "artwork-2", fp, new Float32Array([1, 2])),
      StoreError.InvalidValueError,
      "an embedding of the wrong dimension"
    )
    await expectTagged(
      Fingerprint.make({ params: { size: Number.NaN } }),
      StoreError.FingerprintError,
      "a NaN parameter"
    )
    class ModelDown extends Error {}
    const own = await rejection(
      store.getOrCompute(Brightness, "artwork-3", fp, async () => {
        throw new ModelDown("the model server is down")
      }),
      "a failing compute"
    )
    if (!(own instanceof ModelDown)) throw new Error(`a compute function's error came back as ${own}`)
    if ((await store.has(Brightness, "artwork-3", fp)) !== false) throw new Error("a failed compute stored a value")
    const counters = await store.counters() // the stored computation and the failed one
    if (counters.computations !== 2) throw new Error(`counters: ${JSON.stringify(counters)}`)
    return `${name}: 4 concurrent getOrCompute -> 1 computation; get/getMany/lineage; rejects with ${immutable._tag}, InvalidValueError, FingerprintError and the compute's own error`
  } finally {
    await store.close()
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pack-amber-promise-"))
try {
  console.log(`amber-store/promise ${await check("SQLite file", { sqlite: path.join(dir, "media.db") })}`)
  console.log(`amber-store/promise ${await check("memory", { memory: true })}`)

  // a call after close rejects; bad options reject with the config errors of the Effect API
  const closed = await FeatureStore.open({ memory: true })
  await closed.close()
  await rejection(closed.counters(), "a call after close")
  await expectTagged(
    FeatureStore.open({ sqlite: path.join(dir, "x.db"), leaseMs: 1 }),
    StoreError.StoreConfigError,
    "leaseMs: 1"
  )
  await expectTagged(FeatureStore.open({}), StorageError.StorageConfigError, "no storage")
  await expectTagged(
    FeatureStore.open({ sqlite: path.join(dir, "y.db"), poolSize: 2 }),
    StorageError.StorageConfigError,
    "poolSize with sqlite"
  )
  console.log("amber-store/promise: after close -> rejected; leaseMs: 1 -> StoreConfigError; {} -> StorageConfigError")

  const url = process.env.ORG_TEST_PG_URL
  if (!url) {
    if (process.env.CI) throw new Error("ORG_TEST_PG_URL is not set under CI: the PostgreSQL part must run")
    console.log("SKIPPED amber-store/promise on PostgreSQL: ORG_TEST_PG_URL is not set")
  } else {
    const schema = `pack_promise_${process.pid}`
    try {
      console.log(`amber-store/promise ${await check("PostgreSQL", { postgres: url, schema, poolSize: 2 })}`)
    } finally {
      const { default: pg } = await import("pg")
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      await client.query(`drop schema if exists "${schema}" cascade`)
      await client.end()
    }
    await expectTagged(
      FeatureStore.open({ postgres: "postgres://nobody@127.0.0.1:1/none", connectTimeoutMs: 500 }),
      StorageError.StorageError,
      "a server that is not there"
    )
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
