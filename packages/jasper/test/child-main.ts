// Runs a child process's program on the shared storage location it was given: exit 0 when it succeeds, else 1
// with the error on stderr.
import { Effect, type Layer } from "effect"
import type { Database } from "@org/storage"
import { StorageTesting } from "@org/storage/testing"

export const runChild = <E>(
  location: string,
  program: (storage: Layer.Layer<Database.Database, unknown>) => Effect.Effect<unknown, E>
): void => {
  Effect.runPromise(program(StorageTesting.fromLocation(JSON.parse(location)))).then(
    () => process.exit(0),
    (e) => {
      console.error(e)
      process.exit(1)
    }
  )
}
