import type { Database } from "@org/storage"
import { sql } from "kysely"
import type { ColumnType, Generated, Kysely } from "kysely"
import type * as FeatureSpec from "../FeatureSpec.js"

export const VALUES = "amber_values"
export const FEATURES = "amber_features"
export const CLAIMS = "amber_claims"

/** A `bigint` column: read as a number (SQLite) or a string (PostgreSQL), inserted as a number. */
type BigintColumn = ColumnType<number | string, number, number | string>
/** A JSON column (`text` or `jsonb`): written as JSON text, read through `Capabilities.readJson`. */
type JsonColumn = ColumnType<unknown, string, string>

/** `amber_features`: one row per registered feature version. */
export interface FeaturesTable {
  name: string
  version: number
  entity: string
  kind: FeatureSpec.Definition["kind"]
  dimension: number | null
  schema: string
  registered_at: BigintColumn
}

/** `amber_values`: stored feature values; invalidated ones stay as history. */
export interface ValuesTable {
  id: Generated<number | string>
  feature: string
  version: number
  params: string
  entity: string
  fingerprint: string
  value_json: ColumnType<unknown, string | null, string | null>
  value_bytes: Uint8Array | null
  inputs: JsonColumn
  producer: string
  run: string
  created_at: BigintColumn
  compute_ms: number | null
  invalidated_at: ColumnType<number | string | null, number | null, number | null>
  reason: string | null
}

/** `amber_claims`: single-flight leases on keys being computed. */
export interface ClaimsTable {
  feature: string
  version: number
  params: string
  entity: string
  fingerprint: string
  owner: string
  claimed_at: BigintColumn
  expires_at: BigintColumn
}

/** The tables of `@org/amber-store`, as its migrations create them. */
export interface Tables {
  [FEATURES]: FeaturesTable
  [VALUES]: ValuesTable
  [CLAIMS]: ClaimsTable
}

/** A Kysely instance over amber-store's tables. */
export type Db = Kysely<Tables>

export const migrations: Database.Migrations = {
  "0001_amber_store": {
    up: async (db, caps) => {
      await db.schema
        .createTable(FEATURES)
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("entity", "text", (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("dimension", "integer")
        .addColumn("schema", "text", (c) => c.notNull())
        .addColumn("registered_at", caps.types.bigint, (c) => c.notNull())
        .addPrimaryKeyConstraint("amber_features_pk", ["name", "version"])
        .execute()
      await db.schema
        .createTable(VALUES)
        .addColumn("id", caps.types.bigint, (c) => caps.autoIncrementPrimaryKey(c))
        .addColumn("feature", "text", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("params", "text", (c) => c.notNull())
        .addColumn("entity", "text", (c) => c.notNull())
        .addColumn("fingerprint", "text", (c) => c.notNull())
        .addColumn("value_json", caps.types.json)
        .addColumn("value_bytes", caps.types.binary)
        .addColumn("inputs", caps.types.json, (c) => c.notNull())
        .addColumn("producer", "text", (c) => c.notNull())
        .addColumn("run", "text", (c) => c.notNull())
        .addColumn("created_at", caps.types.bigint, (c) => c.notNull())
        .addColumn("compute_ms", caps.types.double)
        .addColumn("invalidated_at", caps.types.bigint)
        .addColumn("reason", "text")
        .execute()
      // at most one live value per key; invalidated values stay as history
      await db.schema
        .createIndex("amber_values_live")
        .on(VALUES)
        .columns(["feature", "version", "params", "entity", "fingerprint"])
        .unique()
        .where(sql.ref("invalidated_at"), "is", null)
        .execute()
      await db.schema.createIndex("amber_values_entity").on(VALUES).columns(["entity", "feature"]).execute()
      await db.schema
        .createTable(CLAIMS)
        .addColumn("feature", "text", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("params", "text", (c) => c.notNull())
        .addColumn("entity", "text", (c) => c.notNull())
        .addColumn("fingerprint", "text", (c) => c.notNull())
        .addColumn("owner", "text", (c) => c.notNull())
        .addColumn("claimed_at", caps.types.bigint, (c) => c.notNull())
        .addColumn("expires_at", caps.types.bigint, (c) => c.notNull())
        .addPrimaryKeyConstraint("amber_claims_pk", ["feature", "version", "params", "entity", "fingerprint"])
        .execute()
    }
  }
}
