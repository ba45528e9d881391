import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { sql } from "kysely"
import * as net from "node:net"
import { Database } from "@org/storage"
import { PostgresStorage } from "@org/storage/pg"
import { StorageTesting } from "@org/storage/testing"

/** A TCP proxy on 127.0.0.1 in front of PostgreSQL that can be cut and restored. */
const makeProxy = (target: URL) =>
  Effect.acquireRelease(
    Effect.async<{ port: number; cut: () => void; server: net.Server; sockets: Set<net.Socket> }>((resume) => {
      const sockets = new Set<net.Socket>()
      let open = true
      const server = net.createServer((client) => {
        if (!open) return client.destroy()
        const upstream = net.connect(Number(target.port || 5432), target.hostname)
        for (const s of [client, upstream]) {
          sockets.add(s)
          s.on("error", () => undefined)
          s.on("close", () => sockets.delete(s))
        }
        client.pipe(upstream).pipe(client)
      })
      server.listen(0, "127.0.0.1", () =>
        resume(
          Effect.succeed({
            port: (server.address() as net.AddressInfo).port,
            server,
            sockets,
            cut: () => {
              open = false
              for (const s of sockets) s.destroy()
            }
          })
        )
      )
      void open
    }),
    (p) => Effect.sync(() => p.server.close())
  )

describe.skipIf(!StorageTesting.pgUrl)("PostgreSQL outage mid-run", () => {
  it.live("a cut connection gives a StorageError (no crash, no hang) and the pool recovers", () =>
    Effect.gen(function* () {
      const target = new URL(StorageTesting.pgUrl!)
      const proxy = yield* makeProxy(target)
      const url = `postgres://${target.username || "postgres"}@127.0.0.1:${proxy.port}${target.pathname}`
      const db = yield* Layer.build(
        PostgresStorage.layer({ url, poolSize: 2, connectTimeoutMs: 1000, queryTimeoutMs: 2000 })
      )
      const ping = Database.use("ping", (k) => sql`select 1 as one`.execute(k)).pipe(Effect.provide(db))
      yield* ping
      // cut while a query is in flight and while connections sit idle in the pool
      const inFlight = yield* Effect.fork(
        Database.use("sleep", (k) => sql`select pg_sleep(1)`.execute(k)).pipe(Effect.provide(db))
      )
      yield* Effect.sleep("100 millis")
      proxy.cut()
      const failed = yield* Effect.flip(inFlight.await.pipe(Effect.flatten))
      expect(failed).toMatchObject({ _tag: "StorageError", operation: "sleep" })
      const started = Date.now()
      const down = yield* Effect.flip(ping)
      expect(down._tag).toBe("StorageError")
      expect(Date.now() - started).toBeLessThan(5000)
      // the server is back: a new proxy on the same port
      proxy.server.close()
      const revived = net.createServer((client) => {
        const upstream = net.connect(Number(target.port || 5432), target.hostname)
        client.on("error", () => undefined)
        upstream.on("error", () => undefined)
        client.pipe(upstream).pipe(client)
      })
      yield* Effect.async<void>((resume) => {
        revived.listen(proxy.port, "127.0.0.1", () => resume(Effect.void))
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => revived.close()))
      const back = yield* ping
      expect(back.rows).toEqual([{ one: 1 }])
    }).pipe(Effect.scoped)
  )
})
