import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { Database, StorageError } from "@org/storage"

const { StorageConfigError } = StorageError
import { PostgresStorage } from "@org/storage/pg"
import { SqliteStorage } from "@org/storage/sqlite"
import { StorageTesting } from "@org/storage/testing"

const build = <E>(l: Layer.Layer<Database.Database, E>) => Effect.flip(Effect.scoped(Layer.build(l)))

describe("storage configuration errors", () => {
  it.effect("an unknown SQLite option is named", () =>
    Effect.gen(function* () {
      const error = yield* build(SqliteStorage.layer({ filename: ":memory:", journal: "off" } as any))
      expect(error).toMatchObject({ _tag: "StorageConfigError", option: "journal" })
      expect(error.message).toContain('unknown option "journal"')
    })
  )

  it.effect("a SQLite file in a missing folder is refused", () =>
    Effect.gen(function* () {
      const error = yield* build(SqliteStorage.layer({ filename: "/nonexistent-folder-xyz/media.db" }))
      expect(error).toMatchObject({ _tag: "StorageConfigError", option: "filename" })
      expect(error.message).toContain("/nonexistent-folder-xyz")
    })
  )

  it.effect("a malformed PostgreSQL URL is refused before connecting", () =>
    Effect.gen(function* () {
      const error = yield* build(PostgresStorage.layer({ url: "mysql://localhost/db" }))
      expect(error).toMatchObject({ _tag: "StorageConfigError", option: "url" })
      const error2 = yield* build(PostgresStorage.layer({ url: "not a url" }))
      expect(error2._tag).toBe("StorageConfigError")
      const error3 = yield* build(PostgresStorage.layer({ url: "postgres://h/db", poolSize: 0 }))
      expect(error3).toMatchObject({ _tag: "StorageConfigError", option: "poolSize" })
    })
  )

  it.effect("a PostgreSQL server that is down gives a StorageError within the connect timeout", () =>
    Effect.gen(function* () {
      const started = Date.now()
      // 127.0.0.1:1 refuses connections; nothing listens there
      const error = yield* build(PostgresStorage.layer({ url: "postgres://127.0.0.1:1/test", connectTimeoutMs: 1500 }))
      expect(error).toMatchObject({ _tag: "StorageError", operation: "connect" })
      expect(Date.now() - started).toBeLessThan(5000)
    })
  )

  it.effect("layerConfig without its variable is a StorageConfigError naming it, not a bare ConfigError", () =>
    Effect.gen(function* () {
      const empty = Layer.setConfigProvider(ConfigProvider.fromMap(new Map()))
      const pg = yield* build(PostgresStorage.layerConfig().pipe(Layer.provide(empty)))
      expect(pg).toBeInstanceOf(StorageConfigError)
      expect(pg).toMatchObject({ _tag: "StorageConfigError", option: "DATABASE_URL" })
      expect(pg.message).toBe("postgres: DATABASE_URL is not set")
      const sqlite = yield* build(SqliteStorage.layerConfig().pipe(Layer.provide(empty)))
      expect(sqlite).toMatchObject({ _tag: "StorageConfigError", option: "SQLITE_FILENAME" })
      const bad = ConfigProvider.fromMap(new Map([["DATABASE_URL", "mysql://h/db"]]))
      const wrong = yield* build(PostgresStorage.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(bad))))
      expect(wrong).toMatchObject({ _tag: "StorageConfigError", option: "url" })
    })
  )

  it.effect.skipIf(!StorageTesting.pgUrl)("the PostgreSQL URL can be given as a Redacted secret via layerConfig", () =>
    Effect.gen(function* () {
      const { ConfigProvider, Layer: L } = yield* Effect.promise(() => import("effect"))
      const provider = ConfigProvider.fromMap(new Map([["DATABASE_URL", StorageTesting.pgUrl!]]))
      const layer = PostgresStorage.layerConfig().pipe(L.provide(L.setConfigProvider(provider)))
      const label = yield* Effect.map(Database.Database, (db) => db.label).pipe(Effect.provide(layer))
      expect(label).toMatch(/^postgres:\/\/127\.0\.0\.1/)
    })
  )
})
