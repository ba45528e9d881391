/**
 * The schema registry: every annotation type version with the JSON Schema of its
 * payload, checked for compatible evolution when registered, and the validator of
 * payloads (typed ones by their Effect schema, untyped ones by the stored JSON Schema).
 *
 * @since 0.1.0
 */
import { Database } from "@org/storage"
type StorageError = StorageErrors.StorageError
import type { StorageError as StorageErrors } from "@org/storage"
import { Context, Effect, Either, Layer, ParseResult, Schema } from "effect"
import { type Selectable, sql } from "kysely"
import * as AnnotationType from "./AnnotationType.js"
import { formatPath } from "./internal/codec.js"
import { equalSchemas, onlyAddsOptional, validate, type JsonSchema } from "./internal/jsonSchema.js"
import { migrations } from "./internal/migrations.js"
import * as PayloadIndex from "./internal/payloadIndex.js"
import * as Statistics from "./internal/statistics.js"
import { type TypesTable, using } from "./internal/tables.js"
import { IncompatibleTypeError, InvalidAnnotationError, UnknownTypeError } from "./MarkenError.js"

/**
 * The shape of the `Registry` service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Registers a typed version (idempotent when identical); checks the evolution rules. */
  readonly register: (
    type: AnnotationType.AnnotationType
  ) => Effect.Effect<AnnotationType.Definition, IncompatibleTypeError | StorageError>
  /** Registers a version described by a JSON Schema (untyped clients, HTTP). */
  readonly registerDefinition: (
    definition: Schema.Schema.Encoded<typeof AnnotationType.Definition>
  ) => Effect.Effect<AnnotationType.Definition, IncompatibleTypeError | StorageError>
  readonly get: (
    name: string,
    version: string
  ) => Effect.Effect<AnnotationType.Definition, UnknownTypeError | StorageError>
  /** Every registered version, or those of one type, oldest first. */
  readonly list: (name?: string) => Effect.Effect<ReadonlyArray<AnnotationType.Definition>, StorageError>
  /**
   * Validates a payload for a type version and returns it as stored (JSON). `path`
   * prefixes the field path of errors (default `"payload"`).
   */
  readonly validate: (
    name: string,
    version: string,
    payload: unknown,
    path?: string
  ) => Effect.Effect<unknown, InvalidAnnotationError | UnknownTypeError | StorageError>
  /** The typed version registered in this process, when there is one. */
  readonly typed: (name: string, version: string) => AnnotationType.AnnotationType | undefined
}

/**
 * The registry service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Registry extends Context.Tag("@org/marken/Registry")<Registry, Service>() {}

const keyOf = (name: string, version: string) => `${name}@${version}`

/**
 * Builds the registry on the `Database` in context (its migrations run first).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Service, StorageError, Database.Database> = Effect.gen(function* () {
  const clock = yield* Effect.clock
  const db = yield* Database.Database
  const use = using(db)
  yield* db.migrate("@org/marken", migrations)
  const cache = new Map<string, AnnotationType.Definition>()
  const typed = new Map<string, AnnotationType.AnnotationType>()
  const validators = new Map<string, (u: unknown) => Either.Either<unknown, ParseResult.ParseError>>()

  const fromRow = (r: Selectable<TypesTable>): AnnotationType.Definition => ({
    name: r.name,
    version: r.version,
    jsonSchema: db.capabilities.readJson(r.json_schema) as Record<string, unknown>,
    vectors: db.capabilities.readJson(r.vectors) as Record<string, AnnotationType.VectorField>,
    indexes: r.indexes === null || r.indexes === undefined ? [] : (db.capabilities.readJson(r.indexes) as Array<string>)
  })

  /**
   * Brings the database's payload indexes in line with the newest version of every
   * type: creates the ones declared, drops the ones no longer declared (their names
   * are kept in `marken_meta`). Inside the registering transaction.
   */
  const syncPayloadIndexes = Effect.gen(function* () {
    const all = yield* list()
    const newest = new Map<string, AnnotationType.Definition>()
    for (const d of all) newest.set(d.name, d) // oldest first: the last one of a name is its newest
    const wanted = new Map<string, string>()
    for (const d of newest.values()) {
      for (const declared of d.indexes) {
        const path = PayloadIndex.parsePath(declared)
        if (!path) continue
        for (const kind of PayloadIndex.kindsOf(d.jsonSchema, path)) {
          wanted.set(PayloadIndex.dbIndexName(kind, path), PayloadIndex.createIndexSql(db.capabilities, kind, path))
        }
      }
    }
    const meta = yield* use("registry.indexes.read", (k) =>
      k.selectFrom("marken_meta").select("value").where("key", "=", "payload_indexes").executeTakeFirst()
    )
    const existing: Array<string> = meta ? JSON.parse(meta.value) : []
    yield* use("registry.indexes.sync", async (k) => {
      for (const name of existing) if (!wanted.has(name)) await sql.raw(PayloadIndex.dropIndexSql(name)).execute(k)
      for (const create of wanted.values()) await sql.raw(create).execute(k)
      const value = JSON.stringify([...wanted.keys()].sort())
      if (meta) await k.updateTable("marken_meta").set({ value }).where("key", "=", "payload_indexes").execute()
      else await k.insertInto("marken_meta").values({ key: "payload_indexes", value }).execute()
      // a new index without statistics looks to the planner more selective than any other (see statistics.ts)
      if ([...wanted.keys()].some((name) => !existing.includes(name))) await Statistics.analyze(k)
    })
  })

  const list = (name?: string) =>
    use("registry.list", (k) => {
      let q = k.selectFrom("marken_types").selectAll()
      if (name !== undefined) q = q.where("name", "=", name)
      return q.orderBy("name").orderBy("major").orderBy("minor").execute()
    }).pipe(Effect.map((rows) => rows.map(fromRow)))

  const get = (name: string, version: string) =>
    Effect.suspend(() => {
      const hit = cache.get(keyOf(name, version))
      if (hit) return Effect.succeed(hit)
      return use("registry.get", (k) =>
        k
          .selectFrom("marken_types")
          .selectAll()
          .where("name", "=", name)
          .where("version", "=", version)
          .executeTakeFirst()
      ).pipe(
        Effect.flatMap((row) => {
          if (!row) {
            return Effect.fail(
              new UnknownTypeError({
                type: name,
                version,
                path: "type",
                message: `annotation type ${name} version ${version} is not registered`
              })
            )
          }
          const def = fromRow(row)
          cache.set(keyOf(name, version), def)
          return Effect.succeed(def)
        })
      )
    })

  const incompatible = (def: { readonly name: string; readonly version: string }, path: string, message: string) =>
    new IncompatibleTypeError({
      type: def.name,
      version: def.version,
      path,
      message: `${def.name} ${def.version}: ${message}`
    })

  const vectorsOnlyAdded = (
    older: AnnotationType.Definition,
    newer: AnnotationType.Definition
  ): { path: string; message: string } | undefined => {
    for (const [field, spec] of Object.entries(older.vectors)) {
      const next = newer.vectors[field]
      if (!next) return { path: `vectors.${field}`, message: "a minor version may not remove a vector field" }
      if (next.dimension !== spec.dimension || next.metric !== spec.metric)
        return { path: `vectors.${field}`, message: "a minor version may not change a vector field" }
    }
    return undefined
  }

  const registerDefinition = (input: Schema.Schema.Encoded<typeof AnnotationType.Definition>) =>
    Effect.gen(function* () {
      const def = yield* Schema.decodeUnknown(AnnotationType.Definition)(input).pipe(
        Effect.mapError((e) => incompatible(input, "definition", e.message))
      )
      if (!AnnotationType.namePattern.test(def.name)) {
        return yield* incompatible(
          def,
          "name",
          "a type name starts with a letter and has letters, digits, _ . / - (at most 100)"
        )
      }
      const v = AnnotationType.parseVersion(def.version)
      if (!v) return yield* incompatible(def, "version", `version must be "major.minor", e.g. "1.0"`)
      for (const [i, declared] of def.indexes.entries()) {
        if (!PayloadIndex.parsePath(declared))
          return yield* incompatible(
            def,
            `indexes.${i}`,
            `${JSON.stringify(declared)} is not a payload field path (e.g. "payload.genre")`
          )
      }
      for (const [field, spec] of Object.entries(def.vectors)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(field))
          return yield* incompatible(def, `vectors.${field}`, "a vector field name is an identifier")
        if (!Number.isInteger(spec.dimension) || spec.dimension < 1)
          return yield* incompatible(def, `vectors.${field}.dimension`, "must be a positive integer")
      }
      return yield* db.transaction(
        Effect.gen(function* () {
          const existing = yield* list(def.name)
          const same = existing.find((e) => e.version === def.version)
          if (same) {
            if (equalSchemas(same.jsonSchema, def.jsonSchema) && equalSchemas(same.vectors, def.vectors)) {
              if (equalSchemas([...same.indexes].sort(), [...def.indexes].sort())) return same
              // the same version with other indexes: only the indexes change
              yield* use("registry.indexes.update", (k) =>
                k
                  .updateTable("marken_types")
                  .set({ indexes: JSON.stringify(def.indexes) })
                  .where("name", "=", def.name)
                  .where("version", "=", def.version)
                  .execute()
              )
              yield* syncPayloadIndexes
              return def
            }
            return yield* incompatible(
              def,
              "jsonSchema",
              "this version is registered with a different schema: register a new version"
            )
          }
          const sameMajor = existing
            .map((e) => ({ e, v: AnnotationType.parseVersion(e.version)! }))
            .filter((x) => x.v.major === v.major)
          const lower = sameMajor.filter((x) => x.v.minor < v.minor).sort((a, b) => b.v.minor - a.v.minor)[0]
          const higher = sameMajor.filter((x) => x.v.minor > v.minor).sort((a, b) => a.v.minor - b.v.minor)[0]
          for (const [older, newer] of [
            [lower?.e, def],
            [def, higher?.e]
          ] as const) {
            if (!older || !newer) continue
            const issue = onlyAddsOptional(older.jsonSchema as JsonSchema, newer.jsonSchema as JsonSchema)
            if (issue) {
              return yield* incompatible(
                def,
                formatPath("payload", issue.path),
                `${issue.message} (compared ${older.version} with ${newer.version}); make it a new major version`
              )
            }
            const vec = vectorsOnlyAdded(older, newer)
            if (vec)
              return yield* incompatible(
                def,
                vec.path,
                `${vec.message} (compared ${older.version} with ${newer.version})`
              )
          }
          yield* use("registry.insert", (k) =>
            k
              .insertInto("marken_types")
              .values({
                name: def.name,
                version: def.version,
                major: v.major,
                minor: v.minor,
                json_schema: JSON.stringify(def.jsonSchema),
                vectors: JSON.stringify(def.vectors),
                indexes: JSON.stringify(def.indexes),
                created_ms: clock.unsafeCurrentTimeMillis()
              })
              .execute()
          )
          yield* syncPayloadIndexes
          return def
        })
      )
    }).pipe(Effect.tap((def) => Effect.sync(() => cache.set(keyOf(def.name, def.version), def))))

  const register = (type: AnnotationType.AnnotationType) =>
    registerDefinition(AnnotationType.definition(type)).pipe(
      Effect.tap(() =>
        Effect.sync(() => {
          const key = keyOf(type.name, type.version)
          typed.set(key, type)
          validators.set(
            key,
            Schema.decodeUnknownEither(type.payload as Schema.Schema<unknown, unknown>, { onExcessProperty: "error" })
          )
        })
      )
    )

  const validatePayload = (name: string, version: string, payload: unknown, path = "payload") =>
    Effect.gen(function* () {
      const def = yield* get(name, version)
      const key = keyOf(name, version)
      const decode = validators.get(key)
      if (decode) {
        const result = decode(payload)
        if (Either.isLeft(result)) {
          const issue = ParseResult.ArrayFormatter.formatErrorSync(result.left)[0]
          return yield* new InvalidAnnotationError({
            path: formatPath(path, issue?.path ?? []),
            message: issue?.message ?? result.left.message,
            type: key
          })
        }
        return Schema.encodeSync(typed.get(key)!.payload as Schema.Schema<unknown, unknown>)(result.right)
      }
      const issue = validate(def.jsonSchema as JsonSchema, payload)
      if (issue) {
        return yield* new InvalidAnnotationError({
          path: formatPath(path, issue.path),
          message: issue.message,
          type: key
        })
      }
      return payload
    })

  return {
    register,
    registerDefinition,
    get,
    list,
    validate: validatePayload,
    typed: (name, version) => typed.get(keyOf(name, version))
  } satisfies Service
})

/**
 * The registry as a layer over `Database`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Registry, StorageError, Database.Database> = Layer.effect(Registry, make)
