/**
 * Float32 vectors stored as raw little-endian bytes (SQLite BLOB, PostgreSQL bytea),
 * never as JSON.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { VectorError } from "./StorageError.js"

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/**
 * Encodes a vector into bytes (a Node `Buffer`, which both drivers bind as binary).
 * When `dimension` is given the vector's length is checked; when `finite` is true
 * NaN, infinities and numbers beyond the float32 range (which would be stored as
 * infinities) are refused.
 *
 * @since 0.1.0
 * @category codec
 */
export const encode = (
  vector: Float32Array | ReadonlyArray<number>,
  options?: { readonly dimension?: number; readonly finite?: boolean }
): Effect.Effect<Buffer, VectorError> =>
  Effect.suspend(() => {
    const error = check(vector, options)
    return error ? Effect.fail(error) : Effect.succeed(encodeUnsafe(vector))
  })

/**
 * Encodes without checks. Use after {@link check}.
 *
 * @since 0.1.0
 * @category codec
 */
export const encodeUnsafe = (vector: Float32Array | ReadonlyArray<number>): Buffer => {
  const f32 = vector instanceof Float32Array ? vector : Float32Array.from(vector)
  if (littleEndian) {
    return Buffer.from(f32.buffer.slice(f32.byteOffset, f32.byteOffset + f32.byteLength))
  }
  const out = Buffer.allocUnsafe(f32.length * 4)
  for (let i = 0; i < f32.length; i++) out.writeFloatLE(f32[i]!, i * 4)
  return out
}

/**
 * Returns the `VectorError` a vector would fail with, or `undefined` when it is valid.
 *
 * @since 0.1.0
 * @category codec
 */
export const check = (
  vector: Float32Array | ReadonlyArray<number>,
  options?: { readonly dimension?: number; readonly finite?: boolean }
): VectorError | undefined => {
  if (options?.dimension !== undefined && vector.length !== options.dimension) {
    return new VectorError({
      message: `vector has ${vector.length} components, expected ${options.dimension}`,
      expected: options.dimension,
      actual: vector.length
    })
  }
  if (options?.finite) {
    for (let i = 0; i < vector.length; i++) {
      const x = vector[i]!
      if (!Number.isFinite(x)) {
        return new VectorError({ message: `vector component ${i} is ${x}, expected a finite number` })
      }
      // the check runs on the value as stored: a number beyond float32 becomes an infinity
      if (!Number.isFinite(Math.fround(x))) {
        return new VectorError({
          message: `vector component ${i} is ${x}, beyond the float32 range (±3.4028234663852886e38)`
        })
      }
    }
  }
  return undefined
}

/**
 * Decodes bytes produced by {@link encode} back into a `Float32Array`, checking that
 * the byte length is a multiple of 4 and, when given, equals `dimension * 4`.
 *
 * @since 0.1.0
 * @category codec
 */
export const decode = (bytes: Uint8Array, dimension?: number): Effect.Effect<Float32Array, VectorError> =>
  Effect.suspend(() => {
    if (bytes.byteLength % 4 !== 0) {
      return Effect.fail(new VectorError({ message: `vector byte length ${bytes.byteLength} is not a multiple of 4` }))
    }
    const length = bytes.byteLength / 4
    if (dimension !== undefined && length !== dimension) {
      return Effect.fail(
        new VectorError({
          message: `stored vector has ${length} components, expected ${dimension}`,
          expected: dimension,
          actual: length
        })
      )
    }
    return Effect.succeed(decodeUnsafe(bytes))
  })

/**
 * Decodes without checks (the byte length must be a multiple of 4).
 *
 * @since 0.1.0
 * @category codec
 */
export const decodeUnsafe = (bytes: Uint8Array): Float32Array => {
  const length = bytes.byteLength >>> 2
  if (littleEndian) {
    // copy: the driver's buffer may be pooled and unaligned
    const copy = new Uint8Array(length * 4)
    copy.set(bytes.subarray(0, length * 4))
    return new Float32Array(copy.buffer)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out = new Float32Array(length)
  for (let i = 0; i < length; i++) out[i] = view.getFloat32(i * 4, true)
  return out
}
