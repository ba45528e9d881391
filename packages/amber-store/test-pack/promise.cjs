/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS program, as a CommonJS user writes it */
// The Promise entry required from CommonJS: a store on a temporary SQLite file computes once, and a rejection is
// the CommonJS build's own tagged class (instanceof works across the require graph).
const fs = require("node:fs")
const os = require("node:os")
const path = require("node:path")
const { Schema } = require("effect")
const { FeatureSpec, FeatureStore, Fingerprint, StoreError } = require("@org/amber-store/promise")

const Score = FeatureSpec.make({ name: "artwork.score", version: 1, entity: "artwork", value: Schema.Number })

const main = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pack-amber-promise-cjs-"))
  const store = await FeatureStore.open({ sqlite: path.join(dir, "media.db") })
  try {
    const fp = await Fingerprint.make({ params: { seed: 1 } })
    let computed = 0
    const compute = () => ++computed && 0.5
    await store.getOrCompute(Score, "a-1", fp, compute)
    await store.getOrCompute(Score, "a-1", fp, compute)
    if (computed !== 1) throw new Error(`computed ${computed} times`)
    const error = await store.put(Score, "a-1", fp, "not a number").then(
      () => undefined,
      (e) => e
    )
    if (!(error instanceof StoreError.InvalidValueError) || error._tag !== "InvalidValueError") {
      throw new Error(`expected InvalidValueError, got ${error}`)
    }
    console.log(`amber-store/promise (CJS): computed once; a string for a number -> ${error._tag}`)
  } finally {
    await store.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
main().catch((error) => {
  console.error(error)
  process.exit(1)
})
