/**
 * The `marken` command: `serve` a database over HTTP, and `query`, `search` and
 * `types` against a running server. Flags are validated before any work (the
 * database is not opened, no request is sent); a failure prints one line
 * (`--verbose` adds the cause chain); the index build of `serve` is rendered from
 * the service's `indexEvents`.
 */
import { StorageError } from "@org/storage"
import { type CliApp, Command, Options, ValidationError } from "@effect/cli"
import { FetchHttpClient, HttpServer } from "@effect/platform"
import { PostgresStorage } from "@org/storage/pg"
import { SqliteStorage } from "@org/storage/sqlite"
import { Cause, Config, Console, Effect, Layer, Option, Redacted, Schema, Stream } from "effect"
import type { Scope } from "effect"
import * as Annotations from "../Annotations.js"
import * as MarkenClient from "../MarkenClient.js"
import { MarkenConfigError } from "../MarkenError.js"
import * as MarkenServer from "../MarkenServer.js"
import * as Query from "../Query.js"
import { Registry } from "../Registry.js"

const verbose = Options.boolean("verbose").pipe(Options.withDescription("print the cause chain of a failure"))

// ---- serve ----
const database = Options.text("database").pipe(
  Options.withAlias("d"),
  Options.withDescription("a SQLite file, or a postgres:// URL (default: $MARKEN_DATABASE)"),
  Options.withFallbackConfig(Config.string("MARKEN_DATABASE"))
)
const schemaFlag = Options.text("schema").pipe(
  Options.withDescription(
    "the PostgreSQL schema to use, created when missing (default: $MARKEN_SCHEMA, else the server's search path)"
  ),
  Options.withFallbackConfig(Config.string("MARKEN_SCHEMA")),
  Options.optional
)
const port = Options.integer("port").pipe(
  Options.withAlias("p"),
  Options.withDescription("the port (0 picks a free one)"),
  Options.withDefault(8080)
)
const host = Options.text("host").pipe(Options.withDescription("the interface"), Options.withDefault("127.0.0.1"))
const indexDir = Options.directory("index-dir").pipe(
  Options.withDescription("a folder for the HNSW index files (default: none, indexes in memory)"),
  Options.optional
)
const index = Options.choice("index", ["eager", "lazy"]).pipe(
  Options.withDescription("build or load every vector index at start (eager) or on its first search (lazy)"),
  Options.withDefault("eager" as const)
)
const maxBody = Options.integer("max-body-bytes").pipe(
  Options.withDescription("the largest request body (default 1 MiB)"),
  Options.optional
)

/** `MARKEN_READ_TOKENS` and `MARKEN_WRITE_TOKENS`: comma-separated; a token in both has both scopes. */
const tokensFromEnv = Effect.gen(function* () {
  const list = (name: string) =>
    Config.redacted(name).pipe(
      Config.map((r) =>
        Redacted.value(r)
          .split(",")
          .map((t) => t.trim())
          .filter((t) => t.length > 0)
      ),
      Config.withDefault([] as Array<string>)
    )
  const read = yield* list("MARKEN_READ_TOKENS")
  const write = yield* list("MARKEN_WRITE_TOKENS")
  const scopes = new Map<string, Set<"read" | "write">>()
  for (const t of read) scopes.set(t, new Set([...(scopes.get(t) ?? []), "read"]))
  for (const t of write) scopes.set(t, new Set([...(scopes.get(t) ?? []), "write"]))
  if (scopes.size === 0) {
    return yield* new MarkenConfigError({
      option: "MARKEN_READ_TOKENS",
      message: "no tokens: set MARKEN_READ_TOKENS and/or MARKEN_WRITE_TOKENS (comma-separated bearer tokens)"
    })
  }
  return [...scopes].map(([token, s], i) => ({ token: Redacted.make(token), scopes: [...s], name: `token-${i + 1}` }))
}).pipe(
  Effect.mapError((e) =>
    e instanceof MarkenConfigError ? e : new MarkenConfigError({ option: "MARKEN_READ_TOKENS", message: String(e) })
  )
)

const isPostgres = (db: string) => /^postgres(ql)?:\/\//.test(db)
const storageOf = (db: string, schema: Option.Option<string>) =>
  isPostgres(db)
    ? PostgresStorage.layer({
        url: Redacted.make(db),
        ...Option.match(schema, { onNone: () => ({}), onSome: (s) => ({ schema: s }) })
      })
    : SqliteStorage.layer({ filename: db })

const ms = (x: number) => (x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${Math.round(x)} ms`)

/** One line per index event on stderr (a rebuild reports every tenth of the way). */
const renderIndexEvent = (event: Annotations.IndexEvent) => {
  switch (event._tag) {
    case "IndexLoading":
      return Console.error(
        `index ${event.key}: ${event.source === "file" ? "loading from its file" : "building from the database"} (${event.total} vectors)`
      )
    case "IndexProgress": {
      const step = Math.max(1, Math.ceil(event.total / 10))
      return event.done === event.total || event.done % step < 2000
        ? Console.error(
            `index ${event.key}: ${event.done}/${event.total} (${Math.round((100 * event.done) / event.total)}%)`
          )
        : Effect.void
    }
    case "IndexReady":
      return Console.error(`index ${event.key}: ready, ${event.size} vectors, ${event.origin}, in ${ms(event.ms)}`)
    case "IndexFailed":
      return Console.error(`index ${event.key}: failed: ${event.message}`)
  }
}

const serve = Command.make(
  "serve",
  { database, schema: schemaFlag, port, host, indexDir, index, maxBody, verbose },
  (flags) =>
    guarded(
      flags,
      Effect.gen(function* () {
        // every flag and variable checked before the database is opened
        const tokens = yield* tokensFromEnv
        const serverOptions = {
          tokens,
          port: flags.port,
          host: flags.host,
          ...Option.match(flags.maxBody, { onNone: () => ({}), onSome: (maxBodyBytes) => ({ maxBodyBytes }) })
        }
        yield* MarkenServer.decodeOptions({
          tokens,
          ...("maxBodyBytes" in serverOptions ? { maxBodyBytes: serverOptions.maxBodyBytes } : {})
        })
        // an empty MARKEN_SCHEMA is no schema
        const schemaName = Option.filter(flags.schema, (s) => s.length > 0)
        if (Option.isSome(schemaName) && !isPostgres(flags.database)) {
          return yield* new MarkenConfigError({
            option: "schema",
            message: `--schema: ${schemaName.value} is a PostgreSQL schema, and ${flags.database} is not a postgres:// URL`
          })
        }
        if (Option.isSome(schemaName) && !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schemaName.value)) {
          return yield* new MarkenConfigError({
            option: "schema",
            message: `--schema: ${schemaName.value} is not a schema name (letters, digits and _, at most 63)`
          })
        }
        if (flags.port < 0 || flags.port > 65535) {
          return yield* new MarkenConfigError({
            option: "port",
            message: `--port: ${flags.port} is not a port (0 to 65535)`
          })
        }
        const services = Annotations.layerWithRegistry({
          index: flags.index,
          ...(Option.isSome(flags.indexDir) ? { indexDirectory: flags.indexDir.value } : {})
        }).pipe(Layer.provide(storageOf(flags.database, schemaName)))
        const app = MarkenServer.layerNode(serverOptions).pipe(Layer.provideMerge(services))
        yield* Effect.gen(function* () {
          const annotations = yield* Annotations.Annotations
          const server = yield* HttpServer.HttpServer
          const address =
            server.address._tag === "TcpAddress"
              ? `http://${server.address.hostname}:${server.address.port}`
              : server.address.path
          yield* Console.log(`marken: listening on ${address}`)
          if (flags.index === "lazy") {
            // each index as its first search loads it
            yield* Stream.runForEach(annotations.indexEvents, renderIndexEvent).pipe(Effect.forkScoped)
          } else {
            // the eager build: every vector field of the types registered now, rendered as it goes
            const types = yield* (yield* Registry).list()
            const expected = types.reduce((n, d) => n + Object.keys(d.vectors).length, 0)
            let finished = 0
            if (expected > 0) {
              yield* Stream.runForEach(
                annotations.indexEvents.pipe(
                  Stream.takeUntil(
                    (e) => (e._tag === "IndexReady" || e._tag === "IndexFailed") && ++finished >= expected
                  )
                ),
                renderIndexEvent
              )
            }
            yield* annotations.ready
            yield* Console.error(`marken: indexes ready (${expected})`)
          }
          return yield* Effect.never
        }).pipe(Effect.provide(app))
      })
    )
).pipe(
  Command.withDescription("serve a Marken database over HTTP (tokens from MARKEN_READ_TOKENS / MARKEN_WRITE_TOKENS)")
)

// ---- client commands ----
const url = Options.text("url").pipe(
  Options.withDescription("the server (default: $MARKEN_URL, else http://127.0.0.1:8080)"),
  Options.withFallbackConfig(Config.string("MARKEN_URL")),
  Options.withDefault("http://127.0.0.1:8080")
)
const json = Options.boolean("json").pipe(Options.withDescription("print JSON instead of text"))

/** A JSON flag decoded by `schema`: a bad one is a `MarkenConfigError` naming the flag. */
const decodeJson = <A, I>(flag: string, text: string, schema: Schema.Schema<A, I>) =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (e) =>
      new MarkenConfigError({
        option: flag,
        message: `--${flag} is not JSON: ${StorageError.messageOf(e)}`
      })
  }).pipe(
    Effect.flatMap((value) =>
      Schema.decodeUnknown(schema, { onExcessProperty: "error", errors: "first" })(value).pipe(
        Effect.mapError(
          (e) =>
            new MarkenConfigError({
              option: flag,
              message: `--${flag}: ${e.message.replace(/\s*\n\s*/g, " ")}`
            })
        )
      )
    )
  )

const clientOf = (baseUrl: string) =>
  Effect.gen(function* () {
    // an empty MARKEN_TOKEN is no token
    const token = yield* Config.redacted("MARKEN_TOKEN").pipe(
      Config.validate({ message: "empty", validation: (t) => Redacted.value(t).length > 0 }),
      Effect.mapError(
        () =>
          new MarkenConfigError({ option: "MARKEN_TOKEN", message: "set MARKEN_TOKEN to a bearer token of the server" })
      )
    )
    if (!/^https?:\/\/[^/]+/.test(baseUrl)) {
      return yield* new MarkenConfigError({ option: "url", message: `--url: ${baseUrl} is not an http(s) URL` })
    }
    return yield* MarkenClient.make({ baseUrl: baseUrl.replace(/\/+$/, ""), token })
  })

const queryFlag = Options.text("query").pipe(
  Options.withAlias("q"),
  Options.withDescription('the query as JSON, e.g. {"type":"shot","limit":10}'),
  Options.withDefault("{}")
)

const query = Command.make("query", { url, query: queryFlag, json, verbose }, (flags) =>
  guarded(
    flags,
    Effect.gen(function* () {
      const q = yield* decodeJson("query", flags.query, Query.Query)
      const client = yield* clientOf(flags.url)
      const page = yield* client.annotations.query({ payload: q })
      if (flags.json) return yield* Console.log(JSON.stringify(page))
      for (const a of page.items) {
        yield* Console.log(
          [a.id, a.entity, `${a.type}@${a.version}`, a.label ?? "", JSON.stringify(a.payload)].join("\t")
        )
      }
      if (page.next) yield* Console.error(`more: --query with "cursor": "${page.next}"`)
    }).pipe(Effect.provide(FetchHttpClient.layer))
  )
).pipe(Command.withDescription("query annotations on a server (token from MARKEN_TOKEN)"))

const search = Command.make(
  "search",
  {
    url,
    type: Options.text("type").pipe(Options.withDescription("the annotation type")),
    version: Options.text("type-version").pipe(Options.withDescription("its version (e.g. 1.0)")),
    field: Options.text("field").pipe(Options.withDescription("the vector field")),
    vector: Options.text("vector").pipe(Options.withDescription("the query vector as a JSON array of numbers")),
    k: Options.integer("k").pipe(Options.withDescription("how many hits (1 to 1000)"), Options.withDefault(10)),
    filter: Options.text("filter").pipe(
      Options.withDescription("a query as JSON the hits must match"),
      Options.optional
    ),
    json,
    verbose
  },
  (flags) =>
    guarded(
      flags,
      Effect.gen(function* () {
        const vector = yield* decodeJson("vector", flags.vector, Schema.Array(Schema.Number).pipe(Schema.minItems(1)))
        const filter = Option.isSome(flags.filter)
          ? yield* decodeJson("filter", flags.filter.value, Query.Query)
          : undefined
        const knn = yield* decodeJson(
          "k",
          JSON.stringify({ type: flags.type, version: flags.version, field: flags.field, vector, k: flags.k }),
          Query.Knn
        )
        const client = yield* clientOf(flags.url)
        const hits = yield* client.search.knn({ payload: { ...knn, ...(filter ? { filter } : {}) } })
        if (flags.json) return yield* Console.log(JSON.stringify(hits))
        for (const h of hits) yield* Console.log(`${h.id}\t${h.distance.toFixed(6)}`)
      }).pipe(Effect.provide(FetchHttpClient.layer))
    )
).pipe(Command.withDescription("the nearest annotations to a vector on a server (token from MARKEN_TOKEN)"))

const types = Command.make("types", { url, json, verbose }, (flags) =>
  guarded(
    flags,
    Effect.gen(function* () {
      const client = yield* clientOf(flags.url)
      const list = yield* client.types.list()
      if (flags.json) return yield* Console.log(JSON.stringify(list))
      for (const t of list) {
        const vectors = Object.entries(t.vectors).map(([f, v]) => `${f}:${v.dimension}/${v.metric}`)
        yield* Console.log([t.name, t.version, vectors.join(",") || "-"].join("\t"))
      }
    }).pipe(Effect.provide(FetchHttpClient.layer))
  )
).pipe(Command.withDescription("list the annotation types of a server (token from MARKEN_TOKEN)"))

/** Runs a command body; a failure becomes one line on stderr (and the cause chain with --verbose). */
const guarded = <A, E>(
  flags: { readonly verbose: boolean },
  body: Effect.Effect<A, E, Scope.Scope | Annotations.Annotations | Registry | never>
) =>
  (body as Effect.Effect<A, E, Scope.Scope>).pipe(
    Effect.scoped,
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.failCause(cause)
        : Effect.gen(function* () {
            yield* Console.error(`marken: ${oneLine(cause)}`)
            if (flags.verbose) yield* Console.error(Cause.pretty(cause, { renderErrorCause: true }))
            return yield* Effect.sync(() => {
              process.exitCode = 1
            })
          })
    )
  )

const oneLine = (cause: Cause.Cause<unknown>): string => {
  const failure = Option.getOrUndefined(Cause.failureOption(cause))
  const error = failure ?? Cause.squash(cause)
  if (typeof error === "object" && error !== null && "message" in error && typeof error.message === "string") {
    const tag = "_tag" in error && typeof error._tag === "string" ? `${error._tag}: ` : ""
    return `${tag}${error.message.split("\n")[0]}`
  }
  return String(error)
}

/** The `marken` command. */
const marken = Command.make("marken").pipe(
  Command.withDescription("typed, versioned annotations with vector search, over HTTP"),
  Command.withSubcommands([serve, query, search, types])
)

/** Parses `argv` and runs; a usage error (printed by @effect/cli) sets exit code 2. */
export const main = (
  argv: ReadonlyArray<string>,
  version: string
): Effect.Effect<void, unknown, CliApp.CliApp.Environment> =>
  Command.run(marken, { name: "marken", version })(argv).pipe(
    Effect.catchIf(ValidationError.isValidationError, () =>
      Effect.sync(() => {
        process.exitCode = 2
      })
    )
  )
