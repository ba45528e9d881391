import type { Database } from "@org/storage"
import type { ColumnType } from "kysely"

/** A `bigint` column: read as a number (SQLite) or a string (PostgreSQL), inserted as a number. */
type BigintColumn = ColumnType<number | string, number, number | string>
/** A JSON column (`text` or `jsonb`): written as JSON text, read through `Capabilities.readJson`. */
type JsonColumn = ColumnType<unknown, string, string>

/** `jasper_entities`: titles, episodes, artworks, ... with their parent. */
export interface EntitiesTable {
  id: string
  kind: string
  title: string | null
  parent_id: string | null
  attributes: JsonColumn
  created_at: BigintColumn
}

/** `jasper_assets`: content-addressed bytes of one entity in one role, one row per version. */
export interface AssetsTable {
  id: string
  entity_id: string
  role: string
  version: number
  media_type: string
  uri: string
  sha256: string
  byte_size: BigintColumn
  metadata: JsonColumn
  labels: JsonColumn
  added_seq: BigintColumn
  created_at: BigintColumn
  updated_at: BigintColumn
}

/** `jasper_sequence`: named counters (the change feed's positions). */
export interface SequenceTable {
  name: string
  value: BigintColumn
}

/** `jasper_changes`: the change feed. */
export interface ChangesTable {
  seq: BigintColumn
  kind: string
  asset_id: string
  entity_id: string
  role: string
  version: number
  sha256: string
  at: BigintColumn
}

/** `jasper_derivatives`: derived files (thumbnails, proxies) by content, spec and spec version. */
export interface DerivativesTable {
  sha256: string
  spec: string
  spec_version: number
  path: string
  byte_size: BigintColumn
  metadata: JsonColumn
  created_at: BigintColumn
}

/** `jasper_derivative_claims`: the lease of the one process producing a derivative. */
export interface DerivativeClaimsTable {
  sha256: string
  spec: string
  spec_version: number
  owner: string
  expires_at: BigintColumn
}

/** The tables of `@org/jasper`, as its migrations create them. */
export interface Tables {
  jasper_entities: EntitiesTable
  jasper_assets: AssetsTable
  jasper_sequence: SequenceTable
  jasper_changes: ChangesTable
  jasper_derivatives: DerivativesTable
  jasper_derivative_claims: DerivativeClaimsTable
}

/** The catalog's tables; applied with `db.migrate("@org/jasper", migrations)`. */
export const migrations: Database.Migrations = {
  "0001_catalog": {
    up: async (db, caps) => {
      await db.schema
        .createTable("jasper_entities")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("title", "text")
        .addColumn("parent_id", "text", (c) => c.references("jasper_entities.id"))
        .addColumn("attributes", caps.types.json, (c) => c.notNull())
        .addColumn("created_at", caps.types.bigint, (c) => c.notNull())
        .execute()
      await db.schema
        .createIndex("jasper_entities_parent")
        .on("jasper_entities")
        .columns(["parent_id", "kind"])
        .execute()
      await db.schema
        .createTable("jasper_assets")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("entity_id", "text", (c) => c.notNull().references("jasper_entities.id"))
        .addColumn("role", "text", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("media_type", "text", (c) => c.notNull())
        .addColumn("uri", "text", (c) => c.notNull())
        .addColumn("sha256", "text", (c) => c.notNull())
        .addColumn("byte_size", caps.types.bigint, (c) => c.notNull())
        .addColumn("metadata", caps.types.json, (c) => c.notNull())
        .addColumn("labels", caps.types.json, (c) => c.notNull())
        .addColumn("added_seq", caps.types.bigint, (c) => c.notNull())
        .addColumn("created_at", caps.types.bigint, (c) => c.notNull())
        .addColumn("updated_at", caps.types.bigint, (c) => c.notNull())
        .addUniqueConstraint("jasper_assets_version", ["entity_id", "role", "version"])
        .addUniqueConstraint("jasper_assets_content", ["entity_id", "role", "sha256"])
        .execute()
      await db.schema.createIndex("jasper_assets_sha256").on("jasper_assets").column("sha256").execute()
      await db.schema.createIndex("jasper_assets_order").on("jasper_assets").column("added_seq").execute()
      // the change feed: positions handed out from a counter row, so that they commit in order
      await db.schema
        .createTable("jasper_sequence")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("value", caps.types.bigint, (c) => c.notNull())
        .execute()
      await db.insertInto("jasper_sequence").values({ name: "changes", value: 0 }).execute()
      await db.schema
        .createTable("jasper_changes")
        .addColumn("seq", caps.types.bigint, (c) => c.primaryKey())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("asset_id", "text", (c) => c.notNull().references("jasper_assets.id"))
        .addColumn("entity_id", "text", (c) => c.notNull())
        .addColumn("role", "text", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("sha256", "text", (c) => c.notNull())
        .addColumn("at", caps.types.bigint, (c) => c.notNull())
        .execute()
    }
  },
  "0002_derivatives": {
    up: async (db, caps) => {
      await db.schema
        .createTable("jasper_derivatives")
        .addColumn("sha256", "text", (c) => c.notNull())
        .addColumn("spec", "text", (c) => c.notNull())
        .addColumn("spec_version", "integer", (c) => c.notNull())
        .addColumn("path", "text", (c) => c.notNull())
        .addColumn("byte_size", caps.types.bigint, (c) => c.notNull())
        .addColumn("metadata", caps.types.json, (c) => c.notNull())
        .addColumn("created_at", caps.types.bigint, (c) => c.notNull())
        .addPrimaryKeyConstraint("jasper_derivatives_pk", ["sha256", "spec", "spec_version"])
        .execute()
    }
  },
  "0003_derivative_claims": {
    up: async (db, caps) => {
      // one process produces a derivative while the others wait: a claim with a lease
      await db.schema
        .createTable("jasper_derivative_claims")
        .addColumn("sha256", "text", (c) => c.notNull())
        .addColumn("spec", "text", (c) => c.notNull())
        .addColumn("spec_version", "integer", (c) => c.notNull())
        .addColumn("owner", "text", (c) => c.notNull())
        .addColumn("expires_at", caps.types.bigint, (c) => c.notNull())
        .addPrimaryKeyConstraint("jasper_derivative_claims_pk", ["sha256", "spec", "spec_version"])
        .execute()
    }
  }
}
