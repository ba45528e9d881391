// A child process for the cross-process derivative test: asks for one derivative of an asset on a shared database.
// Usage: tsx --conditions=@org/source child-derive.ts '<location json>' <roots dir> <derivatives dir> <asset id> <log file>
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import { Derivative, Jasper } from "@org/jasper"
import { runChild } from "./child-main.js"

const [location, roots, derivatives, assetId, log] = process.argv.slice(2)
const base = Derivative.imageTensor({ width: 16, height: 16, name: "two-process-thumb" })
// records every production in the log, and takes long enough for the two processes to overlap
const slow: Derivative.Spec<unknown> = {
  ...base,
  produce: (input) =>
    Effect.zipRight(
      Effect.zipRight(
        Effect.sync(() => fs.appendFileSync(log!, `${process.pid}\n`)),
        Effect.sleep("1500 millis")
      ),
      base.produce(input)
    )
}
const program = Effect.gen(function* () {
  const service = yield* Derivative.Derivatives
  const entry = yield* service.ensure(assetId!, slow)
  console.log(JSON.stringify({ path: entry.path, produced: entry.produced }))
})
runChild(location!, (storage) =>
  program.pipe(
    Effect.provide(
      Jasper.layer({ roots: [roots!], derivatives: derivatives!, http: false }).pipe(Layer.provide(storage))
    )
  )
)
