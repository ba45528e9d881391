// A child process for the cross-process feed test: registers `count` text assets on a shared database.
// Usage: tsx --conditions=@org/source child-register.ts '<location json>' <prefix> <count>
import { Effect, Layer } from "effect"
import { Catalog, Reader } from "@org/jasper"
import { runChild } from "./child-main.js"

const [location, prefix, count] = process.argv.slice(2)
const memory = new Reader.MemoryStore()
const program = Effect.gen(function* () {
  const catalog = yield* Catalog.Catalog
  yield* catalog.putEntity({ id: "shared", kind: "title" })
  for (let i = 0; i < Number(count); i++) {
    const uri = memory.put(`${prefix}-${i}.txt`, `${prefix} note ${i}`)
    yield* catalog.register({ entityId: "shared", role: `${prefix}-${i}`, uri })
  }
})
runChild(location!, (storage) =>
  program.pipe(
    Effect.provide(Catalog.layer().pipe(Layer.provide(Reader.layer({ memory, http: false })), Layer.provide(storage)))
  )
)
