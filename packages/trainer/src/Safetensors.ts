/**
 * The safetensors format, written by hand: an 8-byte little-endian header length, a
 * JSON header (`dtype`, `shape`, `data_offsets` per tensor, optional
 * `__metadata__` of strings), then the raw little-endian tensor bytes.
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import { messageOf } from "./internal/common.js"

/**
 * A float32 tensor to store.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  readonly shape: ReadonlyArray<number>
  readonly data: Float32Array
}

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/**
 * Encodes tensors (in the order given) and string metadata.
 *
 * @since 0.1.0
 * @category codec
 */
export const encode = (
  tensors: ReadonlyMap<string, Entry>,
  metadata: Readonly<Record<string, string>> = {}
): Uint8Array => {
  const header: Record<string, unknown> = {}
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata
  let offset = 0
  for (const [name, t] of tensors) {
    const bytes = t.data.length * 4
    header[name] = { dtype: "F32", shape: [...t.shape], data_offsets: [offset, offset + bytes] }
    offset += bytes
  }
  let json = JSON.stringify(header)
  // pad with spaces so the data starts 8-byte aligned (as the reference implementation does)
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8)
  const headerBytes = Buffer.from(json, "utf8")
  const out = new Uint8Array(8 + headerBytes.length + offset)
  const view = new DataView(out.buffer)
  view.setBigUint64(0, BigInt(headerBytes.length), true)
  out.set(headerBytes, 8)
  let at = 8 + headerBytes.length
  for (const t of tensors.values()) {
    if (littleEndian) out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at)
    else for (let i = 0; i < t.data.length; i++) view.setFloat32(at + i * 4, t.data[i]!, true)
    at += t.data.length * 4
  }
  return out
}

/**
 * Decodes a safetensors file holding F32 tensors. The left side is why it is not
 * valid.
 *
 * @since 0.1.0
 * @category codec
 */
export const decode = (
  bytes: Uint8Array
): Either.Either<{ readonly tensors: Map<string, Entry>; readonly metadata: Record<string, string> }, string> => {
  if (bytes.length < 8) return Either.left(`file has ${bytes.length} bytes, less than the 8-byte header length`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLength = Number(view.getBigUint64(0, true))
  if (headerLength > bytes.length - 8) return Either.left(`header length ${headerLength} exceeds the file`)
  let header: Record<string, any>
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLength)).toString("utf8"))
  } catch (error) {
    return Either.left(`header is not JSON: ${messageOf(error)}`)
  }
  if (header === null || typeof header !== "object") return Either.left("header is not a JSON object")
  const dataStart = 8 + headerLength
  const dataLength = bytes.length - dataStart
  const tensors = new Map<string, Entry>()
  const metadata: Record<string, string> = header.__metadata__ ?? {}
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue
    if (info?.dtype !== "F32") return Either.left(`tensor ${name} has dtype ${info?.dtype}, only F32 is supported`)
    const shape: Array<number> = info.shape
    const [begin, end] = info.data_offsets ?? []
    const n = Array.isArray(shape) ? shape.reduce((a, b) => a * b, 1) : NaN
    if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end > dataLength || end - begin !== n * 4) {
      return Either.left(`tensor ${name} has offsets [${begin}, ${end}] that do not fit shape [${shape}] in the file`)
    }
    const data = new Float32Array(n)
    if (littleEndian) new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end))
    else for (let i = 0; i < n; i++) data[i] = view.getFloat32(dataStart + begin + i * 4, true)
    tensors.set(name, { shape, data })
  }
  return Either.right({ tensors, metadata })
}
