import * as crypto from "node:crypto"
import { canonicalJson } from "./canonical.js"

/**
 * SHA-256 (hex) of a string: the one-shot `crypto.hash` where Node has it (20.12+),
 * which skips building a `Hash` object per call.
 */
export const sha256: (text: string) => string =
  typeof (crypto as { hash?: unknown }).hash === "function"
    ? (text) => (crypto as unknown as { hash: (a: string, d: string, e: string) => string }).hash("sha256", text, "hex")
    : (text) => crypto.createHash("sha256").update(text).digest("hex")

/**
 * The canonical inputs text of a fingerprint made by `Fingerprint.make`, kept on it
 * under a non-enumerable symbol (a registered symbol: copies of this module agree).
 * A property, not a WeakMap: hundreds of thousands of weak entries cost the garbage
 * collector more than the hashing itself.
 */
const TEXT = Symbol.for("@org/amber-store/Fingerprint/inputs")

export const remember = (fingerprint: object, inputsJson: string): void => {
  Object.defineProperty(fingerprint, TEXT, { value: inputsJson, enumerable: false })
}

/** The canonical inputs text of a fingerprint made by `Fingerprint.make`, if it is one. */
export const inputsText = (fingerprint: object): string | undefined => (fingerprint as { [TEXT]?: string })[TEXT]

const deepFreeze = <A>(value: A): A => {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

interface Params {
  /** Canonical JSON of the parameters. */
  readonly text: string
  /** Its SHA-256 (hex). */
  readonly hash: string
  /** The parameters parsed back from the text (deeply frozen: shared by fingerprints). */
  readonly value: any
}

const NULL_PARAMS: Params = { text: "null", hash: "", value: null }
const paramsCache = new Map<string, Params>()
const PARAMS_CACHE = 1000

/**
 * The canonical text, hash and value of parameters: the text is written for each
 * call (the object may have changed since), its hash and parsed value are cached by
 * text (the parameters of one algorithm are the same for every entity).
 */
export const paramsOf = (params: unknown): Params => {
  if (params === null) {
    if (NULL_PARAMS.hash === "") (NULL_PARAMS as { hash: string }).hash = sha256("null")
    return NULL_PARAMS
  }
  const text = canonicalJson(params, "params")
  let cached = paramsCache.get(text)
  if (cached === undefined) {
    if (paramsCache.size >= PARAMS_CACHE) paramsCache.clear()
    cached = { text, hash: sha256(text), value: deepFreeze(JSON.parse(text)) }
    paramsCache.set(text, cached)
  }
  return cached
}
