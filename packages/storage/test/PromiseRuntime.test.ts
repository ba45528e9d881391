import { describe, expect, it } from "vitest"
import { Effect, Layer } from "effect"
import { Database, PromiseRuntime, StorageError } from "@org/storage"

describe("PromiseRuntime", () => {
  it("run resolves with the value and rejects with the tagged failure itself, not a FiberFailure", async () => {
    expect(await PromiseRuntime.run(Effect.succeed(1))).toBe(1)
    const failure = new StorageError.StorageError({ operation: "x", message: "x failed" })
    const error = await PromiseRuntime.run(Effect.fail(failure)).catch((e: unknown) => e)
    expect(error).toBe(failure)
    expect(error).toBeInstanceOf(StorageError.StorageError)
    const defect = await PromiseRuntime.run(Effect.die(new RangeError("boom"))).catch((e: unknown) => e)
    expect(defect).toBeInstanceOf(RangeError)
  })

  it("open builds the layer, runs on its services, and rejects calls after close", async () => {
    const handle = await PromiseRuntime.open(PromiseRuntime.storageLayer({ sqlite: ":memory:" }))
    const one = await handle.run(
      Effect.flatMap(Database.Database, (db) =>
        db.use("one", async (k) => (await k.selectNoFrom((eb) => eb.lit(1).as("n")).execute())[0])
      )
    )
    expect(one).toEqual({ n: 1 })
    await handle.close()
    await handle.close()
    await expect(handle.run(Effect.void)).rejects.toThrow("closed")
  })

  it("storage options that are neither, both or malformed reject open with StorageConfigError", async () => {
    for (const options of [
      {},
      { sqlite: "a.db", postgres: "postgres://x" },
      { sqlite: "a.db", poolSize: 2 },
      { sqlite: "" }
    ]) {
      const error = await PromiseRuntime.open(PromiseRuntime.storageLayer(options as never)).catch((e: unknown) => e)
      expect(error, JSON.stringify(options)).toBeInstanceOf(StorageError.StorageConfigError)
    }
  })

  it("a layer that fails to build rejects open with its typed error", async () => {
    const failure = new StorageError.StorageError({ operation: "open", message: "open failed" })
    await expect(PromiseRuntime.open(Layer.fail(failure))).rejects.toBe(failure)
  })

  it("splitStorage separates the storage keys from a package's options", () => {
    expect(PromiseRuntime.splitStorage({ sqlite: "a.db", busyTimeoutMs: 10, leaseMs: 100 })).toEqual([
      { sqlite: "a.db", busyTimeoutMs: 10 },
      { leaseMs: 100 }
    ])
  })
})
