/**
 * Migration of stored annotations between type versions: the latest runs of the old
 * version rewritten into new operations of the new one.
 */
import { Effect, Either, Schema } from "effect"
import type * as Annotation from "../Annotation.js"
import type { Migration, Service } from "../Annotations.js"
import { InvalidAnnotationError } from "../MarkenError.js"
import type { Env } from "./env.js"
import type { Operations } from "./operations.js"
import type { Reads } from "./reads.js"
import type { Writes } from "./writes.js"

export const make = (
  { registry, use }: Env,
  ops: Operations,
  reads: Reads,
  writes: Writes
): { readonly migrate: Service["migrate"] } => {
  const { cancel, finish, start } = ops
  const { toAnnotation, vectorsOf } = reads
  const { upsert } = writes

  const migrate: Service["migrate"] = <A, B>(m: Migration<A, B>) =>
    Effect.gen(function* () {
      yield* registry.get(m.from.name, m.from.version)
      const toDef = yield* registry.get(m.to.name, m.to.version)
      const decodeFrom = Schema.decodeUnknownEither(m.from.payload)
      const encodeTo = Schema.encodeEither(m.to.payload)
      const ops = yield* use("marken.migrate.ops", (k) =>
        k
          .selectFrom("marken_current as c")
          .innerJoin("marken_operations as o", "o.id", "c.operation_id")
          .selectAll("o")
          .where("c.type", "=", m.from.name)
          .where("c.version", "=", m.from.version)
          .execute()
      )
      let annotations = 0
      for (const o of ops) {
        const op = yield* start({
          type: m.to.name,
          version: m.to.version,
          producer: {
            algorithm: o.algorithm,
            version: o.algorithm_version,
            run: `migrated from ${m.from.version} (operation ${o.id})`,
            key: o.producer_key
          }
        })
        const copied = yield* Effect.gen(function* () {
          let after = ""
          let n = 0
          for (;;) {
            const rows = yield* use("marken.migrate.read", (k) =>
              k
                .selectFrom("marken_annotations")
                .selectAll()
                .where("operation_id", "=", o.id)
                .where("id", ">", after)
                .orderBy("id")
                .limit(500)
                .execute()
            )
            if (rows.length === 0) return n
            after = rows[rows.length - 1]!.id
            const vs = yield* vectorsOf(rows.map((r) => r.id))
            const items: Array<Annotation.Item> = []
            for (const r of rows) {
              const a = toAnnotation(r)
              const decoded = decodeFrom(a.payload)
              if (Either.isLeft(decoded)) {
                return yield* new InvalidAnnotationError({
                  path: "payload",
                  message: `stored annotation ${a.id}: ${decoded.left.message}`
                })
              }
              const migrated = yield* Effect.try({
                try: () => m.migrate(decoded.right),
                catch: (e) =>
                  new InvalidAnnotationError({ path: "payload", message: `migration of ${a.id} threw: ${String(e)}` })
              })
              const encoded = encodeTo(migrated)
              if (Either.isLeft(encoded)) {
                return yield* new InvalidAnnotationError({
                  path: "payload",
                  message: `migrated ${a.id}: ${encoded.left.message}`
                })
              }
              const vectors: Record<string, Float32Array> = {}
              for (const [field, v] of Object.entries(vs.get(a.id) ?? {})) {
                if (toDef.vectors[field]?.dimension === v.length) vectors[field] = v
              }
              const {
                id: _i,
                operationId: _o,
                type: _t,
                version: _v,
                producer: _p,
                createdMs: _c,
                vectors: _vs,
                ...rest
              } = a
              items.push({ ...rest, key: a.key ?? a.id, payload: encoded.right, vectors })
            }
            yield* upsert(op.id, items, { atomic: true })
            n += items.length
          }
        }).pipe(Effect.tapError(() => Effect.ignore(cancel(op.id))))
        yield* finish(op.id)
        annotations += copied
      }
      return { operations: ops.length, annotations }
    })

  return { migrate }
}
