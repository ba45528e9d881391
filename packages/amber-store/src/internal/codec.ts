/**
 * The value codec of the feature store: a value to the row columns it is stored in
 * (canonical JSON, or float32 bytes for an embedding) and back, with the errors that
 * name the feature and entity.
 */
import { Either, ParseResult, Schema } from "effect"
import { Vector } from "@org/storage"
import * as FeatureSpec from "../FeatureSpec.js"
import { CorruptValueError, InvalidValueError } from "../StoreError.js"
import type { ValueRow } from "./backend.js"
import { canonicalJson } from "./canonical.js"

/** A value as stored: canonical JSON text, or the bytes of an embedding. */
export interface Encoded {
  readonly json: string | null
  readonly bytes: Uint8Array | null
}

/** Whether this machine stores floats little-endian (embeddings are decoded in one buffer only then). */
export const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/** Whether two byte arrays hold the same bytes. */
export const bytesEqual = (a: Uint8Array, b: Uint8Array) => {
  if (a.byteLength !== b.byteLength) return false
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

const describe = (value: unknown) =>
  value === null ? "null" : typeof value === "object" ? (value.constructor?.name ?? "object") : typeof value

/** A value (or a key) that cannot be stored under `spec` for `entity`. */
export const invalid = (spec: FeatureSpec.FeatureSpec<any>, entity: string, message: string) =>
  new InvalidValueError({
    feature: spec.name,
    version: spec.version,
    entity,
    message: `${FeatureSpec.label(spec)} for ${entity || "(empty entity)"}: ${message}`
  })

/** Encodes a value of `spec` for `entity`, or names what is wrong with it. */
export const encode = <A>(
  spec: FeatureSpec.FeatureSpec<A>,
  entity: string,
  value: A
): Either.Either<Encoded, InvalidValueError> => {
  if (spec.kind === "embedding") {
    if (!(value instanceof Float32Array)) {
      return Either.left(invalid(spec, entity, `an embedding must be a Float32Array, got ${describe(value)}`))
    }
    // a NaN or an infinity turns the sum of x * 0 into NaN: one pass without branches,
    // and Vector.check names the offending component when it fails
    let acc = 0
    for (let i = 0; i < value.length; i++) acc += value[i]! * 0
    if (value.length !== spec.dimension || acc !== 0) {
      const error = Vector.check(value, { dimension: spec.dimension!, finite: true })
      if (error) return Either.left(invalid(spec, entity, error.message))
    }
    return Either.right({ json: null, bytes: Vector.encodeUnsafe(value) })
  }
  const encoded = Schema.encodeEither(spec.value)(value)
  if (Either.isLeft(encoded)) {
    return Either.left(invalid(spec, entity, ParseResult.TreeFormatter.formatErrorSync(encoded.left)))
  }
  try {
    return Either.right({ json: canonicalJson(encoded.right), bytes: null })
  } catch (e) {
    return Either.left(invalid(spec, entity, `the encoded value is not JSON: ${(e as Error).message}`))
  }
}

/** Decodes a stored row of `spec`, or fails with a `CorruptValueError`. */
export const decode = <A>(spec: FeatureSpec.FeatureSpec<A>, row: ValueRow): Either.Either<A, CorruptValueError> => {
  const corrupt = (message: string) =>
    new CorruptValueError({
      feature: spec.name,
      version: spec.version,
      entity: row.entity,
      message: `stored ${FeatureSpec.label(spec)} for ${row.entity}: ${message}`
    })
  if (spec.kind === "embedding") {
    if (row.bytes === null || row.bytes.byteLength !== spec.dimension! * 4) {
      return Either.left(
        corrupt(`expected ${spec.dimension! * 4} bytes of float32, found ${row.bytes?.byteLength ?? "none"}`)
      )
    }
    return Either.right(Vector.decodeUnsafe(row.bytes) as A)
  }
  return Either.mapLeft(Schema.decodeUnknownEither(spec.value)(row.json), (e) =>
    corrupt(ParseResult.TreeFormatter.formatErrorSync(e))
  )
}

/** Decodes the embeddings of a batch into one buffer (one allocation, not one per value). */
export const decodeEmbeddings = (
  spec: FeatureSpec.FeatureSpec<any>,
  rows: ReadonlyArray<ValueRow | undefined>
): Either.Either<Array<Float32Array | undefined>, CorruptValueError> => {
  const dimension = spec.dimension!
  let n = 0
  for (const row of rows) {
    if (row === undefined) continue
    if (row.bytes === null || row.bytes.byteLength !== dimension * 4) {
      const error = decode(spec, row)
      if (Either.isLeft(error)) return Either.left(error.left)
    }
    n++
  }
  const all = new Float32Array(n * dimension)
  const bytes = new Uint8Array(all.buffer)
  const out: Array<Float32Array | undefined> = new Array(rows.length)
  let at = 0
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]
    if (row === undefined) continue
    bytes.set(row.bytes!, at * dimension * 4)
    out[i] = all.subarray(at * dimension, (at + 1) * dimension)
    at++
  }
  return Either.right(out)
}

/** Whether a stored row holds the same value as `encoded`. */
export const sameValue = (encoded: Encoded, row: ValueRow) =>
  encoded.bytes !== null
    ? row.bytes !== null && bytesEqual(encoded.bytes, row.bytes)
    : row.json !== null && encoded.json === canonicalJson(row.json)
