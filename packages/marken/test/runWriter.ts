/**
 * The writer process of Runs.suite.ts: on a shared database (a location from
 * `StorageTesting.Adapter.shared`), finishes runs of `clip` one after another, each run
 * re-annotating the same entities with the run's number in the payload, and prints a
 * line per finished run.
 *
 *   node --conditions=@org/source --import tsx runWriter.ts '{"location":{...},"from":1,"to":8}'
 */
import { Effect, Layer } from "effect"
import { Annotations, Registry } from "@org/marken"
import { StorageTesting } from "@org/storage/testing"
import { Clip, clipItems, clustered, producer } from "./fixtures.js"

const { location, from, to } = JSON.parse(process.argv[2]!) as {
  location: Record<string, string>
  from: number
  to: number
}
const data = clustered(300, 32, 6, 3)

const program = Effect.gen(function* () {
  yield* Effect.flatMap(Registry.Registry, (r) => r.register(Clip))
  const a = yield* Annotations.Annotations
  for (let run = from; run <= to; run++) {
    const op = yield* a.start({ type: "clip", version: "1.0", producer })
    yield* a.upsert(op.id, clipItems(data, run))
    yield* a.finish(op.id)
    process.stdout.write(`finished ${run}\n`)
  }
})

Effect.runPromise(
  program.pipe(
    Effect.provide(Annotations.layerWithRegistry().pipe(Layer.provide(StorageTesting.fromLocation(location))))
  )
).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`)
    process.exit(1)
  }
)
