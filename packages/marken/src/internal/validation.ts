/**
 * Validation: queries decoded against their schemas (the library and HTTP share one
 * validation and one error), producers and items checked against their type.
 */
import type { StorageError } from "@org/storage"
import { Vector } from "@org/storage"
import { Effect, Either, type ParseResult, Schema } from "effect"
import * as Annotation from "../Annotation.js"
import type * as AnnotationType from "../AnnotationType.js"
import { InvalidAnnotationError, InvalidQueryError, type UnknownTypeError } from "../MarkenError.js"
import * as Query from "../Query.js"
import * as Region from "../Region.js"
import type * as Registry from "../Registry.js"
import { describeParseError, formatPath } from "./codec.js"

const Base = Schema.Struct(Annotation.Fields)
const decodeBase = Schema.decodeUnknownEither(Base, { onExcessProperty: "error" })
const decodeProducer = Schema.decodeUnknownEither(Annotation.Producer, { onExcessProperty: "error" })

export const firstIssue = (e: ParseResult.ParseError) => describeParseError(e)

/** A query that fails its schema: `InvalidQueryError` with the field path and a one-line message. */
export const invalidQuery = (e: ParseResult.ParseError, prefix = "") => {
  const issue = describeParseError(e)
  return new InvalidQueryError({ path: formatPath(prefix, issue.path) || "query", message: issue.message })
}

/** Queries from code are decoded as HTTP decodes them: one validation, one error. */
export const decodeQuery = <A, I>(schema: Schema.Schema<A, I>, value: unknown, prefix = "") =>
  Effect.mapError(Schema.decodeUnknown(schema)(value), (e) => invalidQuery(e, prefix))

export const decodeKnn = Schema.decodeUnknownEither(Query.Knn)

const intIn = (x: unknown, min: number, max: number) =>
  Number.isSafeInteger(x) && (x as number) >= min && (x as number) <= max

/**
 * Checks a kNN query against its schema, its vector aside (it may be a `Float32Array`;
 * `Vector.check` tests it). The common shape, no filter, is tested here first, accepting
 * only what the schema accepts (`Int`s are safe integers, optional fields may be
 * undefined, other keys are ignored), so an unfiltered search skips the decoder; any other
 * query, valid or not, goes to the schema, which gives the error.
 */
export const checkKnn = (knn: Query.Knn): InvalidQueryError | undefined => {
  if (
    typeof knn === "object" &&
    knn !== null &&
    typeof knn.type === "string" &&
    typeof knn.version === "string" &&
    typeof knn.field === "string" &&
    intIn(knn.k, 1, 1000) &&
    (knn.ef === undefined || intIn(knn.ef, 1, 10000)) &&
    knn.filter === undefined &&
    (knn.includePayload === undefined || typeof knn.includePayload === "boolean")
  ) {
    return undefined
  }
  const checked = decodeKnn({ ...knn, vector: [] })
  return Either.isLeft(checked) ? invalidQuery(checked.left) : undefined
}

export interface Prepared {
  readonly key: string | undefined
  readonly base: Schema.Schema.Type<typeof Base>
  readonly payload: unknown
  readonly bounds: Region.Bounds | undefined
  readonly vectors: ReadonlyArray<{ readonly field: string; readonly vector: Float32Array }>
}

export const checkProducer = (producer: unknown, path: string) => {
  const p = decodeProducer(producer)
  if (Either.isLeft(p)) {
    const issue = firstIssue(p.left)
    return Effect.fail(
      new InvalidAnnotationError({
        path: formatPath(path, issue?.path ?? []),
        message: issue?.message ?? "invalid"
      })
    )
  }
  return Effect.succeed(p.right)
}

/** Checks an item against its type: base fields, payload (by the registry) and vectors. */
export const prepare =
  (registry: Registry.Service) =>
  (
    def: AnnotationType.Definition,
    item: Annotation.Item,
    prefix: string
  ): Effect.Effect<Prepared, InvalidAnnotationError | UnknownTypeError | StorageError.StorageError> =>
    Effect.gen(function* () {
      if (typeof item !== "object" || item === null) {
        return yield* new InvalidAnnotationError({ path: prefix || "item", message: "expected an object" })
      }
      const { vectors, ...rest } = item as Annotation.Item & Record<string, unknown>
      const decoded = decodeBase(rest)
      if (Either.isLeft(decoded)) {
        const issue = firstIssue(decoded.left)
        return yield* new InvalidAnnotationError({
          path: formatPath(prefix, issue?.path ?? []),
          message: issue?.message ?? decoded.left.message,
          type: `${def.name}@${def.version}`
        })
      }
      const base = decoded.right
      const payload = yield* registry.validate(def.name, def.version, base.payload, formatPath(prefix, ["payload"]))
      const vs: Array<{ field: string; vector: Float32Array }> = []
      if (vectors !== undefined) {
        if (typeof vectors !== "object" || vectors === null) {
          return yield* new InvalidAnnotationError({
            path: formatPath(prefix, ["vectors"]),
            message: "expected an object of vectors"
          })
        }
        for (const [field, v] of Object.entries(vectors)) {
          const spec = def.vectors[field]
          const path = formatPath(prefix, ["vectors", field])
          if (!spec) {
            return yield* new InvalidAnnotationError({
              path,
              message: `${def.name} ${def.version} has no vector field ${field} (fields: ${Object.keys(def.vectors).join(", ") || "none"})`
            })
          }
          if (!(v instanceof Float32Array) && !(Array.isArray(v) && v.every((x) => typeof x === "number"))) {
            return yield* new InvalidAnnotationError({ path, message: "expected an array of numbers" })
          }
          const bad = Vector.check(v, { dimension: spec.dimension, finite: true })
          if (bad) return yield* new InvalidAnnotationError({ path, message: bad.message, entity: base.entity })
          vs.push({ field, vector: v instanceof Float32Array ? v : Float32Array.from(v) })
        }
      }
      return {
        key: base.key,
        base,
        payload,
        bounds: base.region ? Region.bounds(base.region) : undefined,
        vectors: vs
      } satisfies Prepared
    })

export const rowOf = (
  p: Prepared,
  id: string,
  op: {
    readonly id: string
    readonly type: string
    readonly version: string
    readonly producer_key: string
    readonly algorithm: string
    readonly algorithm_version: string
    readonly run: string | null
  },
  createdMs: number
) => ({
  id,
  operation_id: op.id,
  key: p.key ?? null,
  entity: p.base.entity,
  type: op.type,
  version: op.version,
  start_ns: p.base.time?.startNs ?? null,
  end_ns: p.base.time?.endNs ?? null,
  rate_num: p.base.frameRate?.num ?? null,
  rate_den: p.base.frameRate?.den ?? null,
  region: p.base.region ? JSON.stringify(p.base.region) : null,
  x0: p.bounds?.x0 ?? null,
  y0: p.bounds?.y0 ?? null,
  x1: p.bounds?.x1 ?? null,
  y1: p.bounds?.y1 ?? null,
  payload: JSON.stringify(p.payload),
  label: p.base.label ?? null,
  confidence: p.base.confidence ?? null,
  producer_key: op.producer_key,
  algorithm: op.algorithm,
  algorithm_version: op.algorithm_version,
  run: op.run,
  created_ms: createdMs
})
