/**
 * Current runs: the pointer rows (which finished operation readers see for each
 * type, version and producer key), mirrored in memory for vector search.
 */
import type { StorageError } from "@org/storage"
import { Effect } from "effect"
import type { Env } from "./env.js"

export const opKey = (type: string, version: string, producer: string) => JSON.stringify([type, version, producer])

export type Runs = ReturnType<typeof make>

export const make = ({ use }: Env) => {
  const current = new Map<string, string>()
  const currentOps = new Set<string>()
  /** Bumped by every change readers could see; cached filter results of an older generation are stale. */
  let generation = 0
  const bump = () => {
    generation++
  }
  const setCurrent = (key: string, op: string) => {
    const old = current.get(key)
    if (old === op) return
    if (old !== undefined) currentOps.delete(old)
    current.set(key, op)
    currentOps.add(op)
    generation++
  }
  const readCurrent: Effect.Effect<Array<Record<string, any>>, StorageError.StorageError> = use("marken.current", (k) =>
    k.selectFrom("marken_current").selectAll().execute()
  )
  /** Mirrors the pointer rows read by `readCurrent` (synchronous: readers see the whole change at once). */
  const applyCurrent = (rows: ReadonlyArray<Record<string, any>>) => {
    const seen = new Set<string>()
    for (const r of rows) {
      const key = opKey(r.type, r.version, r.producer_key)
      seen.add(key)
      setCurrent(key, r.operation_id)
    }
    for (const [key, op] of [...current]) {
      if (!seen.has(key)) {
        current.delete(key)
        currentOps.delete(op)
        generation++
      }
    }
  }
  const loadCurrent = Effect.map(readCurrent, applyCurrent)
  return {
    currentOps,
    /** The current generation (see `bump`). */
    generation: () => generation,
    bump,
    setCurrent,
    readCurrent,
    applyCurrent,
    loadCurrent
  }
}
