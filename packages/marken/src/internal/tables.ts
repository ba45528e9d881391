/**
 * Marken's tables as TypeScript types, beside the migrations that create them
 * (`migrations.ts`): every query goes through `Kysely<Tables>`, so tsc checks table
 * and column names. JSON columns are text on SQLite and jsonb on PostgreSQL: they are
 * written as JSON text and read through `caps.readJson`. 64-bit integers arrive as
 * numbers (see `@org/storage`).
 */
import type { Database, StorageError } from "@org/storage"
import type { Effect } from "effect"
import type { ColumnType, Generated, Kysely, Selectable } from "kysely"

/** A JSON column: read as text (SQLite) or parsed (PostgreSQL), written as JSON text. */
type Json = ColumnType<unknown, string, string>
/** A nullable JSON column. */
type NullableJson = ColumnType<unknown, string | null | undefined, string | null>

export interface MetaTable {
  readonly key: string
  value: string
}

export interface TypesTable {
  readonly name: string
  readonly version: string
  readonly major: number
  readonly minor: number
  readonly json_schema: Json
  readonly vectors: Json
  /** Added by `0003_payload_indexes`: null for versions registered before. */
  indexes: NullableJson
  readonly created_ms: number
}

export interface OperationsTable {
  readonly id: string
  readonly type: string
  readonly version: string
  readonly producer_key: string
  readonly algorithm: string
  readonly algorithm_version: string
  readonly run: string | null
  status: "open" | "finished" | "cancelled"
  started_ms: number
  finished_ms: number | null
}

export interface CurrentTable {
  readonly type: string
  readonly version: string
  readonly producer_key: string
  operation_id: string
}

export interface AnnotationsTable {
  readonly id: string
  readonly operation_id: string
  readonly key: string | null
  readonly entity: string
  readonly type: string
  readonly version: string
  readonly start_ns: number | null
  readonly end_ns: number | null
  readonly rate_num: number | null
  readonly rate_den: number | null
  readonly region: NullableJson
  readonly x0: number | null
  readonly y0: number | null
  readonly x1: number | null
  readonly y1: number | null
  readonly payload: Json
  readonly label: string | null
  readonly confidence: number | null
  readonly producer_key: string
  readonly algorithm: string
  readonly algorithm_version: string
  readonly run: string | null
  readonly created_ms: number
}

export interface VectorsTable {
  readonly seq: Generated<number>
  readonly annotation_id: string
  readonly operation_id: string
  readonly type: string
  readonly version: string
  readonly field: string
  readonly vector: ColumnType<Uint8Array, Uint8Array, Uint8Array>
}

export interface Tables {
  readonly marken_meta: MetaTable
  readonly marken_types: TypesTable
  readonly marken_operations: OperationsTable
  readonly marken_current: CurrentTable
  readonly marken_annotations: AnnotationsTable
  readonly marken_vectors: VectorsTable
}

export type OperationRow = Selectable<OperationsTable>
export type AnnotationRow = Selectable<AnnotationsTable>

/** `db.use` over marken's tables. */
export const using =
  (db: Database.Service) =>
  <A>(operation: string, f: (k: Kysely<Tables>) => Promise<A>): Effect.Effect<A, StorageError.StorageError> =>
    db.use<A, Tables>(operation, f)
