import type { Database } from "@org/storage"
import { sql } from "kysely"

export const VALUES = "amber_values"
export const FEATURES = "amber_features"
export const CLAIMS = "amber_claims"

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
