import type { Effect } from "effect"
import type { StorageError as Storage } from "@org/storage"
import type * as FeatureSpec from "../FeatureSpec.js"

type StorageError = Storage.StorageError

/** The five parts of a value's key. */
export interface Key {
  readonly feature: string
  readonly version: number
  readonly params: string
  readonly entity: string
  readonly fingerprint: string
}

/** A stored value, as bytes or canonical JSON text. */
export interface ValueRow {
  readonly entity: string
  readonly params: string
  readonly fingerprint: string
  /** The encoded JSON value (already parsed). */
  readonly json: unknown
  readonly bytes: Uint8Array | null
}

/** A stored value's lineage (no value). */
export interface MetaRow extends Key {
  readonly inputs: unknown
  readonly producer: string
  readonly run: string
  readonly createdAt: number
  readonly computeMs: number | null
  readonly invalidatedAt: number | null
  readonly reason: string | null
}

/** A value to write. */
export interface NewRow extends Key {
  /** Canonical JSON text of the encoded value (json features). */
  readonly json: string | null
  readonly bytes: Uint8Array | null
  /** Canonical JSON text of the inputs. */
  readonly inputs: string
  readonly producer: string
  readonly run: string
  readonly createdAt: number
  readonly computeMs: number | null
}

export type ClaimResult =
  | { readonly _tag: "Claimed"; readonly takeover: boolean }
  | { readonly _tag: "Held"; readonly owner: string; readonly expiresAt: number }
  | { readonly _tag: "Stored"; readonly row: ValueRow }

export interface Selector {
  readonly feature?: string
  readonly version?: number
  readonly entity?: string
  readonly params?: string
  readonly fingerprint?: string
  readonly includeInvalidated?: boolean
}

type E<A> = Effect.Effect<A, StorageError>

/** What the store needs from where it keeps its rows (SQL through @org/storage, or memory). */
export interface Backend {
  /** Registers a definition when absent; returns the definition stored under its name and version. */
  readonly register: (definition: FeatureSpec.Definition, at: number) => E<FeatureSpec.Definition>
  /** Every registered version of a feature name. */
  readonly definitions: (name: string) => E<ReadonlyArray<FeatureSpec.Definition>>
  /** Live values of one feature version and parameter hash, aligned with `keys` (undefined where none). */
  readonly get: (
    feature: string,
    version: number,
    params: string,
    keys: ReadonlyArray<{ readonly entity: string; readonly fingerprint: string }>
  ) => E<ReadonlyArray<ValueRow | undefined>>
  /**
   * Inserts rows in one transaction, skipping keys that already hold a live value.
   * Returns, for each row, `undefined` when it was written, or the live row under
   * its key (which may be the row itself, or an equal one) when the batch could
   * not tell: the caller compares.
   */
  readonly insert: (rows: ReadonlyArray<NewRow>, release?: string) => E<ReadonlyArray<ValueRow | undefined>>
  readonly meta: (selector: Selector) => E<ReadonlyArray<MetaRow>>
  readonly invalidate: (selector: Selector, at: number, reason: string | null) => E<number>
  /** Takes the claim on a key (or reports who holds it, or the value when it already landed). */
  readonly claim: (key: Key, owner: string, now: number, leaseMs: number) => E<ClaimResult>
  /** Extends a claim this owner holds; false when it lost it. */
  readonly renew: (key: Key, owner: string, until: number) => E<boolean>
  readonly release: (key: Key, owner: string) => E<void>
  /**
   * `claim` for many keys in one transaction (results aligned with `keys`). A key
   * claimed here whose value landed meanwhile is `Stored`, its claim released.
   */
  readonly claimMany: (keys: ReadonlyArray<Key>, owner: string, now: number, leaseMs: number) => E<Array<ClaimResult>>
  /** `renew` for many keys; how many this owner still held. */
  readonly renewMany: (keys: ReadonlyArray<Key>, owner: string, until: number) => E<number>
  /** `release` for many keys, in one statement per feature, version and parameter hash. */
  readonly releaseMany: (keys: ReadonlyArray<Key>, owner: string) => E<void>
}

/** The string form of a key, for maps. */
export const keyString = (feature: string, version: number, params: string, entity: string, fingerprint: string) =>
  `${feature}\u0000${version}\u0000${params}\u0000${entity}\u0000${fingerprint}`
