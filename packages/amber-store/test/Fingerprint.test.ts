import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { createHash } from "node:crypto"
import { Fingerprint } from "@org/amber-store"

/**
 * The fingerprint algorithm of 0.1.0 as first written (canonical JSON of every part,
 * then SHA-256): the faster implementation must give byte-identical output, since
 * stored values are keyed by these hashes.
 */
const canonicalJson = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "boolean") return value ? "true" : "false"
  if (typeof value === "number") return JSON.stringify(value === 0 ? 0 : value)
  if (value === null) return "null"
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(",")}]`
  const parts: Array<string> = []
  for (const key of Object.keys(value as object).sort()) {
    const v = (value as Record<string, unknown>)[key]
    if (v === undefined) continue
    parts.push(`${JSON.stringify(key)}:${canonicalJson(v)}`)
  }
  return `{${parts.join(",")}}`
}
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")
const reference = (inputs: Fingerprint.Inputs) => {
  let assets: unknown
  if (inputs.assets === undefined) assets = []
  else if (Array.isArray(inputs.assets)) assets = [...new Set(inputs.assets)].sort()
  else {
    const record: Record<string, string> = {}
    for (const role of Object.keys(inputs.assets).sort())
      record[role] = (inputs.assets as Record<string, string>)[role]!
    assets = record
  }
  const upstream = (inputs.upstream ?? []).map((u) => ({
    feature: u.feature,
    version: u.version,
    entity: u.entity,
    fingerprint: u.fingerprint
  }))
  const keyed = upstream
    .map((u) => [canonicalJson(u), u] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  const unique = keyed.filter((e, i) => i === 0 || keyed[i - 1]![0] !== e[0]).map((e) => e[1])
  const paramsText = canonicalJson(inputs.params === undefined ? null : inputs.params)
  const assetsText = canonicalJson(assets)
  const upstreamText = canonicalJson(unique)
  return {
    hash: sha256(`amber/1|${assetsText}|${upstreamText}|${paramsText}`),
    params: sha256(paramsText),
    inputs: { assets, upstream: unique, params: JSON.parse(paramsText) }
  }
}

/** A small deterministic generator (mulberry32). */
const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const hex = (n: number) => createHash("sha256").update(String(n)).digest("hex")
const hashes = [hex(1), hex(2), hex(3), hex(4), hex(5)]
const strings = ["a", "image", "poster", "é", '"q"', "\\", "1", "10", "2", "\u2028", "sha256:abc", "😀", "B", "b"]

const randomInputs = (r: () => number): Fingerprint.Inputs => {
  const pick = <A>(xs: ReadonlyArray<A>) => xs[Math.floor(r() * xs.length)]!
  const json = (depth: number): Fingerprint.Json => {
    const k = r()
    if (depth > 2 || k < 0.3) return pick([null, true, false, 0, -0, 1.5, -3, 1e21, 224, pick(strings)])
    if (k < 0.6) return Array.from({ length: Math.floor(r() * 3) }, () => json(depth + 1))
    const o: Record<string, Fingerprint.Json | undefined> = {}
    for (let i = 0; i < Math.floor(r() * 4); i++) o[pick(strings)] = r() < 0.1 ? undefined : json(depth + 1)
    return o
  }
  const assets =
    r() < 0.2
      ? undefined
      : r() < 0.3
        ? Array.from({ length: Math.floor(r() * 4) }, () => pick(hashes))
        : Object.fromEntries(Array.from({ length: Math.floor(r() * 4) }, () => [pick(strings), pick(hashes)]))
  const upstream =
    r() < 0.3
      ? undefined
      : Array.from({ length: Math.floor(r() * 4) }, () => ({
          feature: pick(strings),
          version: pick([1, 2, 10]),
          entity: pick(strings),
          fingerprint: pick(strings)
        }))
  const params = r() < 0.3 ? undefined : json(0)
  return { assets, upstream, params }
}

describe("Fingerprint", () => {
  it("gives the same hashes as the first implementation (stored values keep their keys)", () => {
    const r = rng(42)
    for (let i = 0; i < 2000; i++) {
      const inputs = randomInputs(r)
      const ours = Fingerprint.unsafeMake(inputs)
      const ref = reference(inputs)
      expect(ours.hash, JSON.stringify(inputs)).toBe(ref.hash)
      expect(ours.params).toBe(ref.params)
      expect(ours.inputs).toEqual(ref.inputs)
    }
  })

  it("pins known hashes", () => {
    // computed with the first implementation (with real content hashes): they must never change
    const pinned = [
      Fingerprint.unsafeMake({}).hash,
      Fingerprint.unsafeMake({ assets: { image: hex(1) }, upstream: [], params: null }).hash,
      Fingerprint.unsafeMake({
        assets: { image: hex(1), audio: hex(2) },
        upstream: [
          { feature: "f", version: 2, entity: "e2", fingerprint: "y" },
          { feature: "f", version: 1, entity: "e1", fingerprint: "x" }
        ],
        params: { size: 224, mode: ["a", 1.5] }
      }).hash,
      Fingerprint.unsafeMake({ params: { size: 224 } }).params
    ]
    expect(pinned).toEqual(PINNED)
  })

  it("fingerprints are frozen; their inputs are canonical; params parsed back are shared but frozen", () => {
    const params = { size: 224, nested: { b: 1, a: 2 } }
    const a = Fingerprint.unsafeMake({ assets: { image: hex(1) }, params })
    params.size = 225
    const b = Fingerprint.unsafeMake({ assets: { image: hex(1) }, params })
    expect(a.params).not.toBe(b.params)
    expect(Object.isFrozen(a)).toBe(true)
    expect(Object.isFrozen(a.inputs.params)).toBe(true)
    expect(a.inputs.params).toEqual({ size: 224, nested: { a: 2, b: 1 } })
    expect(Object.keys(a)).toEqual(["_tag", "hash", "params", "inputs"])
    expect(JSON.parse(JSON.stringify(a))).toEqual({
      _tag: "Fingerprint",
      hash: a.hash,
      params: a.params,
      inputs: a.inputs
    })
  })

  it("refuses bad inputs with the same paths", () => {
    const bad = Fingerprint.either({
      assets: { image: hex(1) },
      upstream: [{ feature: "f", version: 1, entity: "", fingerprint: "x" }]
    })
    expect(Either.isLeft(bad) && bad.left.path).toBe("upstream[0].entity")
    const nan = Fingerprint.either({ params: { t: Number.NaN } })
    expect(Either.isLeft(nan) && nan.left.path).toBe("params.t")
    const empty = Fingerprint.either({ assets: [hex(1), "h"] })
    expect(Either.isLeft(empty) && empty.left.path).toBe("assets[1]")
  })
})

const PINNED = [
  "ccaa8d868fe14681dc781d0ced001e7a4cbaa66a0f307cb73edb7323bdc63359",
  "184a65142ffd711317afcaeb71bbd7fd7ba56586272c7ef137e3ea398331c54c",
  "c787634c0378f1c787e39fd44872b058f9d638c877fe156eb972687a56f821d3",
  "ca5bc7b634610a981bf6d486b1ab82de1cf1b1b7ad404a827efd66034224961e"
]
