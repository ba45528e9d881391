/**
 * Input fingerprints: a deterministic, canonical SHA-256 over what a feature value
 * is computed from (the content hashes of assets, the fingerprints of upstream
 * feature values, and parameters). Key order never matters; metadata is not an
 * input, so a metadata-only change keeps the fingerprint (a cache hit) while a
 * content change or an upstream change gives a new one (a miss).
 *
 * @since 0.1.0
 */
import { Effect, Either } from "effect"
import * as ContentHash from "@org/media-types/ContentHash"
import { createHash } from "node:crypto"
import { StorageError } from "@org/storage"
import { canonicalJson } from "./internal/canonical.js"
import { remember } from "./internal/fingerprints.js"
import { FingerprintError } from "./StoreError.js"

/**
 * A JSON value (parameters of a computation).
 *
 * @since 0.1.0
 * @category models
 */
export type Json = string | number | boolean | null | ReadonlyArray<Json> | { readonly [key: string]: Json | undefined }

/**
 * A reference to an upstream feature value: the value's key without parameters
 * (its fingerprint already covers them).
 *
 * @since 0.1.0
 * @category models
 */
export interface Upstream {
  readonly feature: string
  readonly version: number
  readonly entity: string
  /** The upstream value's input fingerprint (`Fingerprint.hash`). */
  readonly fingerprint: string
}

/**
 * What a value is computed from.
 *
 * @since 0.1.0
 * @category models
 */
export interface Inputs {
  /**
   * Content hashes of the assets read, by role (`{ image: asset.sha256 }`) or as a
   * set (order and duplicates do not matter). Each is a `ContentHash` of
   * `@org/media-types`: the bare lowercase hex sha256 of the bytes (64 digits, no
   * `sha256:` prefix), as `@org/jasper` stores it; anything else is a `FingerprintError`.
   */
  readonly assets?:
    | Readonly<Record<string, ContentHash.ContentHash>>
    | ReadonlyArray<ContentHash.ContentHash>
    | undefined
  /** Upstream feature values read (order does not matter). */
  readonly upstream?: ReadonlyArray<Upstream> | undefined
  /** Parameters of the computation (also hashed on their own into the key). */
  readonly params?: Json | undefined
}

/**
 * A computed fingerprint: `hash` covers all inputs, `params` covers the parameters
 * alone, `inputs` is the canonical form that was hashed (recorded as lineage).
 *
 * @since 0.1.0
 * @category models
 */
export interface Fingerprint {
  readonly _tag: "Fingerprint"
  /** SHA-256 (hex) of the canonical inputs. */
  readonly hash: string
  /** SHA-256 (hex) of the canonical parameters (`null` when there are none). */
  readonly params: string
  /** The canonical inputs: assets sorted, upstream sorted, parameters as given. */
  readonly inputs: CanonicalInputs
}

/**
 * Inputs in canonical form.
 *
 * @since 0.1.0
 * @category models
 */
export interface CanonicalInputs {
  readonly assets: Readonly<Record<string, string>> | ReadonlyArray<string>
  readonly upstream: ReadonlyArray<Upstream>
  readonly params: Json
}

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex")

const checkHash = (value: unknown, path: string): string => {
  if (typeof value !== "string" || value.length === 0) {
    throw new FingerprintError({ path, message: `${path} must be a non-empty content hash` })
  }
  return value
}

const checkContentHash = (value: unknown, path: string): ContentHash.ContentHash => {
  if (!ContentHash.is(value)) {
    const shown =
      typeof value === "string" ? JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value) : typeof value
    throw new FingerprintError({
      path,
      message: `${path} must be a content hash (64 lowercase hex digits, the sha256 of the bytes, no prefix), not ${shown}`
    })
  }
  return value
}

const canonicalize = (inputs: Inputs): CanonicalInputs => {
  let assets: Readonly<Record<string, string>> | ReadonlyArray<string>
  if (inputs.assets === undefined) assets = []
  else if (Array.isArray(inputs.assets)) {
    assets = [...new Set(inputs.assets.map((h, i) => checkContentHash(h, `assets[${i}]`)))].sort()
  } else {
    const record: Record<string, string> = {}
    for (const role of Object.keys(inputs.assets).sort()) {
      record[role] = checkContentHash((inputs.assets as Record<string, string>)[role], `assets.${role}`)
    }
    assets = record
  }
  const upstream = (inputs.upstream ?? []).map((u, i) => {
    const path = `upstream[${i}]`
    if (typeof u !== "object" || u === null) throw new FingerprintError({ path, message: `${path} must be an object` })
    if (typeof u.feature !== "string" || u.feature.length === 0)
      throw new FingerprintError({ path: `${path}.feature`, message: `${path}.feature must be a feature name` })
    if (!Number.isInteger(u.version) || u.version < 1)
      throw new FingerprintError({ path: `${path}.version`, message: `${path}.version must be a positive integer` })
    if (typeof u.entity !== "string" || u.entity.length === 0)
      throw new FingerprintError({ path: `${path}.entity`, message: `${path}.entity must be an entity id` })
    return {
      feature: u.feature,
      version: u.version,
      entity: u.entity,
      fingerprint: checkHash(u.fingerprint, `${path}.fingerprint`)
    }
  })
  const keyed = upstream
    .map((u) => [canonicalJson(u), u] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  const unique = keyed.filter((e, i) => i === 0 || keyed[i - 1]![0] !== e[0]).map((e) => e[1])
  return { assets, upstream: unique, params: inputs.params === undefined ? null : inputs.params }
}

const compute = (inputs: Inputs): Fingerprint => {
  const canonical = canonicalize(inputs)
  const paramsText = canonicalJson(canonical.params, "params")
  const assetsText = canonicalJson(canonical.assets, "assets")
  const upstreamText = canonicalJson(canonical.upstream, "upstream")
  const fingerprint: Fingerprint = Object.freeze({
    _tag: "Fingerprint" as const,
    hash: sha256(`amber/1|${assetsText}|${upstreamText}|${paramsText}`),
    params: sha256(paramsText),
    inputs: Object.freeze({ ...canonical, params: JSON.parse(paramsText) as Json })
  })
  // the lineage text: canonical JSON of `inputs` (keys sorted)
  remember(fingerprint, `{"assets":${assetsText},"params":${paramsText},"upstream":${upstreamText}}`)
  return fingerprint
}

/**
 * Computes the fingerprint of `inputs`, failing with a `FingerprintError` when they
 * cannot be hashed canonically or an asset hash is not a `ContentHash`.
 *
 * @example
 * ```ts
 * const fp = yield* Fingerprint.make({ assets: { image: asset.contentHash }, params: { size: 224 } })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = (inputs: Inputs): Effect.Effect<Fingerprint, FingerprintError> =>
  Effect.suspend(() => Either.match(either(inputs), { onLeft: Effect.fail, onRight: Effect.succeed }))

/**
 * {@link make} as an `Either`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const either = (inputs: Inputs): Either.Either<Fingerprint, FingerprintError> => {
  try {
    return Either.right(compute(inputs))
  } catch (e) {
    if (e instanceof FingerprintError) return Either.left(e)
    return Either.left(new FingerprintError({ path: "$", message: StorageError.messageOf(e) }))
  }
}

/**
 * {@link make} that throws the `FingerprintError` (for inputs known to be valid).
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMake = (inputs: Inputs): Fingerprint => compute(inputs)

/**
 * The reference to an upstream value, to list in another value's `Inputs.upstream`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const upstream = (
  spec: { readonly name: string; readonly version: number },
  entity: string,
  fingerprint: Fingerprint
): Upstream => ({ feature: spec.name, version: spec.version, entity, fingerprint: fingerprint.hash })

/**
 * The SHA-256 (hex) of a JSON value's canonical form (key order independent).
 *
 * @since 0.1.0
 * @category utils
 */
export const hashJson = (value: Json): Effect.Effect<string, FingerprintError> =>
  Effect.try({
    try: () => sha256(canonicalJson(value)),
    catch: (e) =>
      e instanceof FingerprintError ? e : new FingerprintError({ path: "$", message: StorageError.messageOf(e) })
  })
