import type { Database } from "@org/storage"
import { randomUUID } from "node:crypto"
import { analyze } from "./statistics.js"

export const migrations: Database.Migrations = {
  "0001_marken": {
    up: async (db, caps) => {
      const { bigint, binary, double, json } = caps.types
      await db.schema
        .createTable("marken_meta")
        .addColumn("key", "text", (c) => c.primaryKey())
        .addColumn("value", "text", (c) => c.notNull())
        .execute()
      await db.insertInto("marken_meta").values({ key: "instance", value: randomUUID() }).execute()
      await db.schema
        .createTable("marken_types")
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("version", "text", (c) => c.notNull())
        .addColumn("major", "integer", (c) => c.notNull())
        .addColumn("minor", "integer", (c) => c.notNull())
        .addColumn("json_schema", json, (c) => c.notNull())
        .addColumn("vectors", json, (c) => c.notNull())
        .addColumn("created_ms", bigint, (c) => c.notNull())
        .addPrimaryKeyConstraint("marken_types_pk", ["name", "version"])
        .execute()
      await db.schema
        .createTable("marken_operations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("version", "text", (c) => c.notNull())
        .addColumn("producer_key", "text", (c) => c.notNull())
        .addColumn("algorithm", "text", (c) => c.notNull())
        .addColumn("algorithm_version", "text", (c) => c.notNull())
        .addColumn("run", "text")
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("started_ms", bigint, (c) => c.notNull())
        .addColumn("finished_ms", bigint)
        .execute()
      await db.schema
        .createIndex("marken_operations_key")
        .on("marken_operations")
        .columns(["type", "version", "producer_key"])
        .execute()
      await db.schema
        .createTable("marken_current")
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("version", "text", (c) => c.notNull())
        .addColumn("producer_key", "text", (c) => c.notNull())
        .addColumn("operation_id", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("marken_current_pk", ["type", "version", "producer_key"])
        .execute()
      await db.schema
        .createIndex("marken_current_operation")
        .on("marken_current")
        .column("operation_id")
        .unique()
        .execute()
      await db.schema
        .createTable("marken_annotations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("operation_id", "text", (c) => c.notNull())
        .addColumn("key", "text")
        .addColumn("entity", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("version", "text", (c) => c.notNull())
        .addColumn("start_ns", bigint)
        .addColumn("end_ns", bigint)
        .addColumn("rate_num", "integer")
        .addColumn("rate_den", "integer")
        .addColumn("region", json)
        .addColumn("x0", double)
        .addColumn("y0", double)
        .addColumn("x1", double)
        .addColumn("y1", double)
        .addColumn("payload", json, (c) => c.notNull())
        .addColumn("label", "text")
        .addColumn("confidence", double)
        .addColumn("producer_key", "text", (c) => c.notNull())
        .addColumn("algorithm", "text", (c) => c.notNull())
        .addColumn("algorithm_version", "text", (c) => c.notNull())
        .addColumn("run", "text")
        .addColumn("created_ms", bigint, (c) => c.notNull())
        .execute()
      await db.schema
        .createIndex("marken_annotations_operation_key")
        .on("marken_annotations")
        .columns(["operation_id", "key"])
        .execute()
      await db.schema
        .createIndex("marken_annotations_entity")
        .on("marken_annotations")
        .columns(["entity", "type", "version"])
        .execute()
      await db.schema
        .createIndex("marken_annotations_type")
        .on("marken_annotations")
        .columns(["type", "version", "operation_id"])
        .execute()
      await db.schema
        .createTable("marken_vectors")
        .addColumn("seq", bigint, (c) => caps.autoIncrementPrimaryKey(c))
        .addColumn("annotation_id", "text", (c) => c.notNull())
        .addColumn("operation_id", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("version", "text", (c) => c.notNull())
        .addColumn("field", "text", (c) => c.notNull())
        .addColumn("vector", binary, (c) => c.notNull())
        .execute()
      await db.schema
        .createIndex("marken_vectors_key")
        .on("marken_vectors")
        .columns(["type", "version", "field", "seq"])
        .execute()
      await db.schema.createIndex("marken_vectors_annotation").on("marken_vectors").column("annotation_id").execute()
    }
  },
  "0002_vector_lookup": {
    // filtered vector search maps matching annotations to vector labels from the index alone (no blob reads)
    up: async (db) => {
      await db.schema
        .createIndex("marken_vectors_annotation_field")
        .on("marken_vectors")
        .columns(["annotation_id", "field", "seq"])
        .execute()
    }
  },
  "0003_payload_indexes": {
    // the payload fields each type version indexes (see payloadIndex.ts); the indexes themselves follow the registry
    up: async (db, caps) => {
      await db.schema.alterTable("marken_types").addColumn("indexes", caps.types.json).execute()
    }
  },
  "0004_statistics": {
    // planner statistics for databases written before Marken kept them (see statistics.ts)
    up: async (db) => {
      await analyze(db)
    }
  }
}
