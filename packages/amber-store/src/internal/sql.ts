import { Array as Arr, Effect } from "effect"
import { Database } from "@org/storage"
import { CompiledQuery, sql } from "kysely"
import type { Expression, ExpressionBuilder, Selectable, SqlBool } from "kysely"
import type * as FeatureSpec from "../FeatureSpec.js"
import type { Backend, ClaimResult, Key, MetaRow, NewRow, Selector, ValueRow } from "./backend.js"
import { keyString } from "./backend.js"
import { CLAIMS, FEATURES, migrations, VALUES } from "./migrations.js"
import type { Db, Tables } from "./migrations.js"

export interface SqlOptions {
  /** Most bind parameters in one statement (SQLite allows 32766, PostgreSQL 65535). */
  readonly maxParameters: number
}

const META_COLUMNS = [
  "id",
  "feature",
  "version",
  "params",
  "entity",
  "fingerprint",
  "inputs",
  "producer",
  "run",
  "created_at",
  "compute_ms",
  "invalidated_at",
  "reason"
] as const

/** A row of a `get`: the key's position and the value's columns. */
interface ValueSelect {
  readonly i: number | string
  readonly value_json: unknown
  readonly value_bytes: Uint8Array | null
}

/** A row of {@link META_COLUMNS}. */
type MetaSelect = Pick<Selectable<Tables[typeof VALUES]>, (typeof META_COLUMNS)[number]>

const INSERT_COLUMNS = [
  "feature",
  "version",
  "params",
  "entity",
  "fingerprint",
  "value_json",
  "value_bytes",
  "inputs",
  "producer",
  "run",
  "created_at",
  "compute_ms"
] as const

/**
 * Compiled SQL text by query shape: a query is built and compiled with Kysely once
 * per shape, then run again with new parameters, skipping the query builder. A
 * shape is cached only when Kysely bound exactly the parameters we would pass.
 */
class Templates {
  readonly #texts = new Map<string, string>()
  query<R>(db: Db, shape: string, parameters: ReadonlyArray<unknown>, build: () => CompiledQuery<R>) {
    const text = this.#texts.get(shape)
    if (text !== undefined) return db.executeQuery<R>(CompiledQuery.raw(text, parameters as Array<unknown>))
    const compiled = build()
    const same =
      compiled.parameters.length === parameters.length && compiled.parameters.every((p, i) => p === parameters[i])
    if (same) {
      if (this.#texts.size >= 256) this.#texts.clear()
      this.#texts.set(shape, compiled.sql)
    }
    return db.executeQuery<R>(compiled)
  }
}

/** The claim on one key. */
const claimOf =
  (key: Key) =>
  (eb: ExpressionBuilder<Tables, typeof CLAIMS>): Expression<SqlBool> =>
    eb.and([
      eb("feature", "=", key.feature),
      eb("version", "=", key.version),
      eb("params", "=", key.params),
      eb("entity", "=", key.entity),
      eb("fingerprint", "=", key.fingerprint)
    ])

/** The values a selector picks. */
const selected =
  (s: Selector) =>
  (eb: ExpressionBuilder<Tables, typeof VALUES>): Expression<SqlBool> => {
    const conditions: Array<Expression<SqlBool>> = []
    if (s.feature !== undefined) conditions.push(eb("feature", "=", s.feature))
    if (s.version !== undefined) conditions.push(eb("version", "=", s.version))
    if (s.entity !== undefined) conditions.push(eb("entity", "=", s.entity))
    if (s.params !== undefined) conditions.push(eb("params", "=", s.params))
    if (s.fingerprint !== undefined) conditions.push(eb("fingerprint", "=", s.fingerprint))
    if (!s.includeInvalidated) conditions.push(eb("invalidated_at", "is", null))
    return eb.and(conditions)
  }

export const make = (
  db: Database.Service,
  options: SqlOptions
): Effect.Effect<Backend, import("@org/storage").StorageError.StorageError> =>
  Effect.gen(function* () {
    yield* db.migrate("@org/amber-store", migrations)
    const use = Database.typed<Tables>(db)
    const parseJson = db.capabilities.readJson
    const templates = new Templates()
    const keysPerQuery = Math.max(1, Math.floor((options.maxParameters - 3) / 3))
    // up to a thousand rows a statement: bigger ones cost more to prepare (SQLite) than they save
    const rowsPerInsert = Math.max(1, Math.min(1000, Math.floor(options.maxParameters / INSERT_COLUMNS.length)))

    const toMeta = (r: MetaSelect): MetaRow => ({
      feature: r.feature,
      version: Number(r.version),
      params: r.params,
      entity: r.entity,
      fingerprint: r.fingerprint,
      inputs: parseJson(r.inputs),
      producer: r.producer,
      run: r.run,
      createdAt: Number(r.created_at),
      computeMs: r.compute_ms === null ? null : Number(r.compute_ms),
      invalidatedAt: r.invalidated_at === null ? null : Number(r.invalidated_at),
      reason: r.reason
    })

    // keys join a VALUES list (columns column1, column2 on both SQLite and PostgreSQL): one
    // statement per batch. CROSS JOIN makes SQLite loop over the keys with index lookups;
    // PostgreSQL plans it as any inner join (a hash join for big batches)
    /** A column of the values table under the alias `v`, its name checked by tsc. */
    const v = (column: keyof Tables[typeof VALUES] & string) => sql.ref(`v.${column}`)
    const selectValues = (
      k: Db,
      feature: string,
      version: number,
      params: string,
      keys: ReadonlyArray<{ readonly entity: string; readonly fingerprint: string }>
    ) => {
      const parameters: Array<unknown> = new Array(keys.length * 3 + 3)
      let p = 0
      for (let i = 0; i < keys.length; i++) {
        parameters[p++] = keys[i]!.entity
        parameters[p++] = keys[i]!.fingerprint
        parameters[p++] = i
      }
      parameters[p++] = feature
      parameters[p++] = version
      parameters[p++] = params
      // each key carries its position, so rows come back to their keys without a lookup
      return templates.query<ValueSelect>(k, `get:${keys.length}`, parameters, () =>
        sql<ValueSelect>`select k.column3 as i, ${v("value_json")}, ${v("value_bytes")} from (values ${sql.join(
          keys.map((key, i) => sql`(${key.entity}, ${key.fingerprint}, ${i})`)
        )}) k cross join ${sql.table(VALUES)} v where ${v("entity")} = k.column1 and ${v("fingerprint")} = k.column2 and ${v("feature")} = ${feature} and ${v("version")} = ${version} and ${v("params")} = ${params} and ${v("invalidated_at")} is null`.compile(
          k
        )
      )
    }

    const get: Backend["get"] = (feature, version, params, keys) =>
      keys.length === 0
        ? Effect.succeed([])
        : Effect.forEach(Arr.chunksOf(keys, keysPerQuery), (chunk) =>
            use(`amber.get:${feature}@${version}`, (k) => selectValues(k, feature, version, params, chunk))
          ).pipe(
            Effect.map((results) => {
              const out: Array<ValueRow | undefined> = new Array(keys.length).fill(undefined)
              let offset = 0
              for (const result of results) {
                for (const r of result.rows) {
                  const i = offset + Number(r.i)
                  const key = keys[i]!
                  out[i] = {
                    entity: key.entity,
                    params,
                    fingerprint: key.fingerprint,
                    json: r.value_json === null || r.value_json === undefined ? null : parseJson(r.value_json),
                    bytes: r.value_bytes ?? null
                  }
                }
                offset += keysPerQuery
              }
              return out
            })
          )

    const insertChunk = (k: Db, rows: ReadonlyArray<NewRow>, skipConflicts: boolean) => {
      // parameters in INSERT_COLUMNS order, without building the query unless its shape is new
      const parameters: Array<unknown> = new Array(rows.length * INSERT_COLUMNS.length)
      let p = 0
      for (const r of rows) {
        parameters[p++] = r.feature
        parameters[p++] = r.version
        parameters[p++] = r.params
        parameters[p++] = r.entity
        parameters[p++] = r.fingerprint
        parameters[p++] = r.json
        parameters[p++] = r.bytes
        parameters[p++] = r.inputs
        parameters[p++] = r.producer
        parameters[p++] = r.run
        parameters[p++] = r.createdAt
        parameters[p++] = r.computeMs
      }
      return templates.query(k, `insert:${skipConflicts}:${rows.length}`, parameters, () => {
        const query = k
          .insertInto(VALUES)
          .columns([...INSERT_COLUMNS])
          .values(
            rows.map((r) => ({
              feature: r.feature,
              version: r.version,
              params: r.params,
              entity: r.entity,
              fingerprint: r.fingerprint,
              value_json: r.json,
              value_bytes: r.bytes,
              inputs: r.inputs,
              producer: r.producer,
              run: r.run,
              created_at: r.createdAt,
              compute_ms: r.computeMs
            }))
          )
        return (skipConflicts ? query.onConflict((oc) => oc.doNothing()) : query).compile()
      })
    }

    const release: Backend["release"] = (key, owner) =>
      use(`amber.release:${key.feature}@${key.version}`, (k) =>
        k
          .deleteFrom(CLAIMS)
          .where(claimOf(key))
          .where("owner", "=", owner)
          .execute()
          .then(() => undefined)
      )

    /** Keys grouped by feature, version and parameter hash, in chunks of at most `size`. */
    const groupedChunks = <K extends Key>(keys: ReadonlyArray<K>, size: number): Array<Array<K>> => {
      const groups = new Map<string, Array<K>>()
      for (const key of keys) {
        const g = `${key.feature}\u0000${key.version}\u0000${key.params}`
        const list = groups.get(g)
        if (list) list.push(key)
        else groups.set(g, [key])
      }
      return [...groups.values()].flatMap((list) => Arr.chunksOf(list, size))
    }

    /** The keys of one group (same feature, version and parameter hash) of `groupedChunks`. */
    const keysOf =
      (chunk: ReadonlyArray<Key>) =>
      (eb: ExpressionBuilder<Tables, typeof CLAIMS>): Expression<SqlBool> =>
        eb.and([
          eb("feature", "=", chunk[0]!.feature),
          eb("version", "=", chunk[0]!.version),
          eb("params", "=", chunk[0]!.params),
          eb.or(chunk.map((key) => eb.and([eb("entity", "=", key.entity), eb("fingerprint", "=", key.fingerprint)])))
        ])

    // two parameters a key, plus feature, version, parameter hash, owner and one to spare; at most 400 keys, as
    // SQLite parses `a or b or ...` into a tree as deep as its terms (at most 1000 deep)
    const keysPerClaimQuery = Math.max(1, Math.min(400, Math.floor((options.maxParameters - 6) / 2)))
    const claimsPerInsert = Math.max(1, Math.min(1000, Math.floor(options.maxParameters / 8)))

    const releaseMany: Backend["releaseMany"] = (keys, owner) =>
      keys.length === 0
        ? Effect.void
        : Effect.forEach(
            groupedChunks(keys, keysPerClaimQuery),
            (chunk) =>
              use(`amber.release:${chunk[0]!.feature}@${chunk[0]!.version}`, (k) =>
                k.deleteFrom(CLAIMS).where("owner", "=", owner).where(keysOf(chunk)).execute()
              ),
            { discard: true }
          )

    const renewMany: Backend["renewMany"] = (keys, owner, until) =>
      Effect.map(
        Effect.forEach(groupedChunks(keys, keysPerClaimQuery), (chunk) =>
          use(`amber.renew:${chunk[0]!.feature}@${chunk[0]!.version}`, (k) =>
            k
              .updateTable(CLAIMS)
              .set({ expires_at: until })
              .where("owner", "=", owner)
              .where(keysOf(chunk))
              .executeTakeFirst()
              .then((r) => Number(r.numUpdatedRows))
          )
        ),
        (counts) => counts.reduce((a, b) => a + b, 0)
      )

    const releaseClaims = (rows: ReadonlyArray<NewRow>, owner: string | undefined) =>
      owner === undefined ? Effect.void : releaseMany(rows, owner)

    /**
     * Inserts the rows, skipping those holding a live value already (`on conflict do
     * nothing`); only when a chunk wrote fewer rows than it has are its live values read
     * back (into `out`), to be compared.
     */
    const insertSkipping = (
      operation: string,
      rows: ReadonlyArray<NewRow>,
      batches: ReadonlyArray<ReadonlyArray<NewRow>>,
      out: Array<ValueRow | undefined>
    ) =>
      Effect.gen(function* () {
        let offset = 0
        for (const chunk of batches) {
          const result = yield* use(operation, (k) => insertChunk(k, chunk, true))
          const start = offset
          offset += chunk.length
          if (Number(result.numAffectedRows ?? -1) === chunk.length) continue
          const groups = new Map<string, Array<number>>()
          chunk.forEach((r, j) => {
            const group = `${r.feature}\u0000${r.version}\u0000${r.params}`
            const list = groups.get(group)
            if (list) list.push(start + j)
            else groups.set(group, [start + j])
          })
          for (const indices of groups.values()) {
            const first = rows[indices[0]!]!
            const existing = yield* get(
              first.feature,
              first.version,
              first.params,
              indices.map((i) => rows[i]!)
            )
            indices.forEach((i, j) => (out[i] = existing[j]))
          }
        }
      })

    const insert: Backend["insert"] = (rows, release) => {
      if (rows.length === 0) return Effect.succeed([])
      const operation = `amber.put:${rows[0]!.feature}@${rows[0]!.version}`
      const out: Array<ValueRow | undefined> = new Array(rows.length).fill(undefined)
      const batches = Arr.chunksOf(rows, rowsPerInsert)
      if (db.capabilities.roundTripPerStatement) {
        // a round trip per statement (a server): the insert checks conflicts itself, and one
        // statement needs no BEGIN/COMMIT around it (alone it is atomic), nor does the
        // release of the claims after it (a claim left by a crash in between expires)
        const write = insertSkipping(operation, rows, batches, out)
        return (batches.length === 1 ? write : db.transaction(write)).pipe(
          Effect.zipRight(releaseClaims(rows, release)),
          Effect.as(out)
        )
      }
      return db.transaction(
        Effect.gen(function* () {
          // the common case first: plain inserts under a savepoint (cheaper than the conflict
          // checks of `on conflict do nothing`); any failure rolls back to it and takes the safe path
          yield* use(operation, (k) => sql`savepoint amber_put`.execute(k))
          const plain = yield* Effect.either(
            Effect.forEach(batches, (chunk) => use(operation, (k) => insertChunk(k, chunk, false)), {
              discard: true
            })
          )
          if (plain._tag === "Right") {
            yield* use(operation, (k) => sql`release savepoint amber_put`.execute(k))
            yield* releaseClaims(rows, release)
            return out
          }
          yield* use(operation, (k) => sql`rollback to savepoint amber_put`.execute(k))
          yield* use(operation, (k) => sql`release savepoint amber_put`.execute(k))
          yield* insertSkipping(operation, rows, batches, out)
          yield* releaseClaims(rows, release)
          return out
        })
      )
    }

    const meta: Backend["meta"] = (s) =>
      use(`amber.list:${s.feature ?? s.entity ?? "*"}`, (k) =>
        k.selectFrom(VALUES).select(META_COLUMNS).where(selected(s)).orderBy("id").execute()
      ).pipe(Effect.map((rows) => rows.map(toMeta)))

    const invalidate: Backend["invalidate"] = (s, at, reason) =>
      use(`amber.invalidate:${s.feature ?? "*"}`, (k) =>
        k
          .updateTable(VALUES)
          .set({ invalidated_at: at, reason })
          .where(selected({ ...s, includeInvalidated: false }))
          .executeTakeFirst()
          .then((r) => Number(r.numUpdatedRows))
      )

    const register: Backend["register"] = (d, at) =>
      use(`amber.register:${d.name}@${d.version}`, async (k) => {
        await k
          .insertInto(FEATURES)
          .values({
            name: d.name,
            version: d.version,
            entity: d.entity,
            kind: d.kind,
            dimension: d.dimension,
            schema: d.schema,
            registered_at: at
          })
          .onConflict((oc) => oc.doNothing())
          .execute()
        const row = await k
          .selectFrom(FEATURES)
          .selectAll()
          .where("name", "=", d.name)
          .where("version", "=", d.version)
          .executeTakeFirstOrThrow()
        return toDefinition(row)
      })

    const definitions: Backend["definitions"] = (name) =>
      use(`amber.features:${name}`, (k) =>
        k
          .selectFrom(FEATURES)
          .selectAll()
          .where("name", "=", name)
          .orderBy("version")
          .execute()
          .then((rows) => rows.map(toDefinition))
      )

    const claim: Backend["claim"] = (key, owner, now, leaseMs) =>
      db.transaction(
        Effect.gen(function* () {
          const operation = `amber.claim:${key.feature}@${key.version}`
          const inserted = yield* use(operation, (k) =>
            k
              .insertInto(CLAIMS)
              .values({ ...key, owner, claimed_at: now, expires_at: now + leaseMs })
              .onConflict((oc) => oc.doNothing())
              .returning("owner")
              .execute()
          )
          let result: ClaimResult
          if (inserted.length > 0) result = { _tag: "Claimed", takeover: false }
          else {
            const held = yield* use(operation, (k) =>
              k.selectFrom(CLAIMS).select(["owner", "expires_at"]).where(claimOf(key)).executeTakeFirst()
            )
            if (held === undefined) result = { _tag: "Held", owner: "", expiresAt: now }
            else if (held.owner === owner) result = { _tag: "Claimed", takeover: false }
            else if (Number(held.expires_at) > now)
              result = { _tag: "Held", owner: held.owner, expiresAt: Number(held.expires_at) }
            else {
              // the holder's lease ran out: take over, unless another waiter just did
              const taken = yield* use(operation, (k) =>
                k
                  .updateTable(CLAIMS)
                  .set({ owner, claimed_at: now, expires_at: now + leaseMs })
                  .where(claimOf(key))
                  .where("owner", "=", held.owner)
                  .where("expires_at", "=", held.expires_at)
                  .executeTakeFirst()
              )
              result =
                Number(taken.numUpdatedRows) === 1
                  ? { _tag: "Claimed", takeover: true }
                  : { _tag: "Held", owner: "", expiresAt: now }
            }
          }
          // checked after claiming: a value that landed meanwhile wins, and the claim goes
          const [stored] = yield* get(key.feature, key.version, key.params, [key])
          if (stored !== undefined) {
            if (result._tag === "Claimed") {
              yield* use(operation, (k) =>
                k.deleteFrom(CLAIMS).where(claimOf(key)).where("owner", "=", owner).execute()
              )
            }
            return { _tag: "Stored", row: stored } as const
          }
          return result
        })
      )

    const renew: Backend["renew"] = (key, owner, until) =>
      use(`amber.renew:${key.feature}@${key.version}`, (k) =>
        k
          .updateTable(CLAIMS)
          .set({ expires_at: until })
          .where(claimOf(key))
          .where("owner", "=", owner)
          .executeTakeFirst()
          .then((r) => Number(r.numUpdatedRows) === 1)
      )

    const claimMany: Backend["claimMany"] = (keys, owner, now, leaseMs) =>
      keys.length === 0
        ? Effect.succeed([])
        : // on a server each statement commits alone: the claims are visible at once, and the
          // check of stored values after them sees what committed since (no BEGIN/COMMIT round trips)
          (db.capabilities.roundTripPerStatement ? <A, E, R>(self: Effect.Effect<A, E, R>) => self : db.transaction)(
            Effect.gen(function* () {
              const operation = `amber.claim:${keys[0]!.feature}@${keys[0]!.version}`
              const stringOf = (k: Key) => keyString(k.feature, Number(k.version), k.params, k.entity, k.fingerprint)
              const index = new Map<string, Array<number>>()
              keys.forEach((key, i) => {
                const list = index.get(stringOf(key))
                if (list) list.push(i)
                else index.set(stringOf(key), [i])
              })
              const out: Array<ClaimResult | undefined> = new Array(keys.length).fill(undefined)
              const claimed: ClaimResult = { _tag: "Claimed", takeover: false }
              // one multi-row insert per chunk: the keys it wrote are ours. Keys go in one global
              // order, so two batches sharing keys wait for each other instead of deadlocking
              const sorted = [...index.keys()].sort().map((ks) => keys[index.get(ks)![0]!]!)
              for (const chunk of Arr.chunksOf(sorted, claimsPerInsert)) {
                const inserted = yield* use(operation, (k) =>
                  k
                    .insertInto(CLAIMS)
                    .values(
                      chunk.map((key) => ({
                        feature: key.feature,
                        version: key.version,
                        params: key.params,
                        entity: key.entity,
                        fingerprint: key.fingerprint,
                        owner,
                        claimed_at: now,
                        expires_at: now + leaseMs
                      }))
                    )
                    .onConflict((oc) => oc.doNothing())
                    .returning(["feature", "version", "params", "entity", "fingerprint"])
                    .execute()
                )
                for (const r of inserted) for (const i of index.get(stringOf(r)) ?? []) out[i] = claimed
              }
              // the others are held: by whom, until when
              const rest = keys.filter((_, i) => out[i] === undefined)
              for (const chunk of groupedChunks(rest, keysPerClaimQuery)) {
                const held = yield* use(operation, (k) =>
                  k
                    .selectFrom(CLAIMS)
                    .select(["feature", "version", "params", "entity", "fingerprint", "owner", "expires_at"])
                    .where(keysOf(chunk))
                    .execute()
                )
                const byKey = new Map(held.map((h) => [stringOf(h), h]))
                for (const key of chunk) {
                  const h = byKey.get(stringOf(key))
                  let result: ClaimResult
                  if (h === undefined) result = { _tag: "Held", owner: "", expiresAt: now }
                  else if (h.owner === owner) result = claimed
                  else if (Number(h.expires_at) > now)
                    result = { _tag: "Held", owner: h.owner, expiresAt: Number(h.expires_at) }
                  else {
                    // the holder's lease ran out: take over, unless another waiter just did
                    const taken = yield* use(operation, (k) =>
                      k
                        .updateTable(CLAIMS)
                        .set({ owner, claimed_at: now, expires_at: now + leaseMs })
                        .where(claimOf(key))
                        .where("owner", "=", h.owner)
                        .where("expires_at", "=", h.expires_at)
                        .executeTakeFirst()
                    )
                    result =
                      Number(taken.numUpdatedRows) === 1
                        ? { _tag: "Claimed", takeover: true }
                        : { _tag: "Held", owner: "", expiresAt: now }
                  }
                  for (const i of index.get(stringOf(key))!) out[i] = result
                }
              }
              // checked after claiming: a value that landed meanwhile wins, and its claim goes
              const release: Array<Key> = []
              for (const chunk of groupedChunks(keys, keysPerQuery)) {
                const stored = yield* get(chunk[0]!.feature, chunk[0]!.version, chunk[0]!.params, chunk)
                chunk.forEach((key, j) => {
                  const row = stored[j]
                  if (row === undefined) return
                  const indices = index.get(stringOf(key))!
                  if (out[indices[0]!]!._tag === "Claimed") release.push(key)
                  for (const i of indices) out[i] = { _tag: "Stored", row }
                })
              }
              yield* releaseMany(release, owner)
              return out as Array<ClaimResult>
            })
          )

    return {
      register,
      definitions,
      get,
      insert,
      meta,
      invalidate,
      claim,
      renew,
      release,
      claimMany,
      renewMany,
      releaseMany
    } satisfies Backend
  })

const toDefinition = (r: Selectable<Tables[typeof FEATURES]>): FeatureSpec.Definition => ({
  name: r.name,
  version: Number(r.version),
  entity: r.entity,
  kind: r.kind,
  dimension: r.dimension === null ? null : Number(r.dimension),
  schema: r.schema
})
