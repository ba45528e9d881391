import { Effect } from "effect"
import type * as FeatureSpec from "../FeatureSpec.js"
import type { Backend, ClaimResult, Key, MetaRow, NewRow, Selector, ValueRow } from "./backend.js"
import { keyString } from "./backend.js"

interface Stored extends MetaRow {
  readonly json: unknown
  readonly bytes: Uint8Array | null
  invalidatedAt: number | null
  reason: string | null
}

/** The rows of an in-memory store; one process, so claims are plain map entries. */
export const make = (): Backend => {
  const features = new Map<string, FeatureSpec.Definition>()
  const rows: Array<Stored> = []
  const live = new Map<string, Stored>()
  const claims = new Map<string, { owner: string; expiresAt: number }>()
  const ks = (k: Key) => keyString(k.feature, k.version, k.params, k.entity, k.fingerprint)
  const toValue = (s: Stored): ValueRow => ({
    entity: s.entity,
    params: s.params,
    fingerprint: s.fingerprint,
    json: s.json,
    bytes: s.bytes
  })
  const matches = (s: Stored, sel: Selector) =>
    (sel.feature === undefined || s.feature === sel.feature) &&
    (sel.version === undefined || s.version === sel.version) &&
    (sel.entity === undefined || s.entity === sel.entity) &&
    (sel.params === undefined || s.params === sel.params) &&
    (sel.fingerprint === undefined || s.fingerprint === sel.fingerprint) &&
    (sel.includeInvalidated || s.invalidatedAt === null)

  const get: Backend["get"] = (feature, version, params, keys) =>
    Effect.sync(() =>
      keys.map((k) => {
        const s = live.get(keyString(feature, version, params, k.entity, k.fingerprint))
        return s ? toValue(s) : undefined
      })
    )

  const insertOne = (r: NewRow): ValueRow | undefined => {
    const key = ks(r)
    const existing = live.get(key)
    if (existing) return toValue(existing)
    const stored: Stored = {
      feature: r.feature,
      version: r.version,
      params: r.params,
      entity: r.entity,
      fingerprint: r.fingerprint,
      json: r.json === null ? null : JSON.parse(r.json),
      bytes: r.bytes === null ? null : Uint8Array.from(r.bytes),
      inputs: JSON.parse(r.inputs),
      producer: r.producer,
      run: r.run,
      createdAt: r.createdAt,
      computeMs: r.computeMs,
      invalidatedAt: null,
      reason: null
    }
    rows.push(stored)
    live.set(key, stored)
    return undefined
  }

  const claimSync = (key: Key, owner: string, now: number, leaseMs: number): ClaimResult => {
    const k = ks(key)
    const stored = live.get(k)
    if (stored) return { _tag: "Stored", row: toValue(stored) }
    const held = claims.get(k)
    if (held && held.owner !== owner && held.expiresAt > now) {
      return { _tag: "Held", owner: held.owner, expiresAt: held.expiresAt }
    }
    claims.set(k, { owner, expiresAt: now + leaseMs })
    return { _tag: "Claimed", takeover: held !== undefined && held.owner !== owner }
  }

  return {
    register: (d, _at) =>
      Effect.sync(() => {
        const key = `${d.name}@${d.version}`
        const existing = features.get(key)
        if (existing) return existing
        features.set(key, d)
        return d
      }),
    definitions: (name) =>
      Effect.sync(() => [...features.values()].filter((d) => d.name === name).sort((a, b) => a.version - b.version)),
    get,
    insert: (newRows, release) =>
      Effect.sync(() => {
        const out = newRows.map(insertOne)
        if (release !== undefined) {
          for (const r of newRows) if (claims.get(ks(r))?.owner === release) claims.delete(ks(r))
        }
        return out
      }),
    meta: (sel) =>
      Effect.sync(() => rows.filter((s) => matches(s, sel)).map(({ bytes: _b, json: _j, ...m }) => ({ ...m }))),
    invalidate: (sel, at, reason) =>
      Effect.sync(() => {
        let n = 0
        for (const s of rows) {
          if (!matches(s, { ...sel, includeInvalidated: false })) continue
          s.invalidatedAt = at
          s.reason = reason
          live.delete(ks(s))
          n++
        }
        return n
      }),
    claimMany: (keys, owner, now, leaseMs) => Effect.sync(() => keys.map((key) => claimSync(key, owner, now, leaseMs))),
    renewMany: (keys, owner, until) =>
      Effect.sync(() => {
        let n = 0
        for (const key of keys) {
          const held = claims.get(ks(key))
          if (held?.owner !== owner) continue
          held.expiresAt = until
          n++
        }
        return n
      }),
    releaseMany: (keys, owner) =>
      Effect.sync(() => {
        for (const key of keys) if (claims.get(ks(key))?.owner === owner) claims.delete(ks(key))
      }),
    claim: (key, owner, now, leaseMs) => Effect.sync(() => claimSync(key, owner, now, leaseMs)),
    renew: (key, owner, until) =>
      Effect.sync(() => {
        const held = claims.get(ks(key))
        if (!held || held.owner !== owner) return false
        held.expiresAt = until
        return true
      }),
    release: (key, owner) =>
      Effect.sync(() => {
        if (claims.get(ks(key))?.owner === owner) claims.delete(ks(key))
      })
  }
}
