/**
 * The HTTP server of Marken: the `MarkenApi` handlers over the `Annotations` and
 * `Registry` services, bearer tokens with read and write scopes, a request body
 * limit (413), JSON errors naming the failing field, and the OpenAPI document at
 * `/openapi.json`.
 *
 * @since 0.1.0
 */
import {
  HttpApiBuilder,
  type HttpApiError,
  HttpServerRequest,
  HttpServerResponse,
  type HttpApp,
  type HttpRouter,
  type HttpServer
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Either, Layer, Option, Redacted, Schema } from "effect"
import * as crypto from "node:crypto"
import * as http from "node:http"
import type * as Annotation from "./Annotation.js"
import { fromIssues } from "./internal/codec.js"
import * as KnnRoute from "./internal/knnRoute.js"
import * as Annotations from "./Annotations.js"
import {
  decodeOptions as decode,
  InvalidQueryError,
  type MarkenConfigError,
  MarkenFailureError,
  TypeNotFoundError
} from "./MarkenError.js"
import {
  type Caller,
  ForbiddenError,
  InvalidRequestError,
  MarkenApi,
  MethodNotAllowedError,
  openApi,
  PayloadTooLargeError,
  ReadAuthorization,
  RouteNotFoundError,
  UnauthorizedError,
  UnsupportedMediaTypeError,
  WriteAuthorization,
  Scope
} from "./MarkenApi.js"
import { Registry } from "./Registry.js"

/**
 * A token the server accepts, with its scopes (`write` does not imply `read`).
 *
 * @since 0.1.0
 * @category models
 */
export const Token = Schema.Struct({
  token: Schema.Union(Schema.String.pipe(Schema.minLength(1)), Schema.RedactedFromSelf(Schema.String)),
  scopes: Schema.Array(Scope),
  /** A name for logs (never the token). */
  name: Schema.optionalWith(Schema.String, { exact: true })
})

/**
 * @since 0.1.0
 * @category models
 */
export interface Token {
  readonly token: string | Redacted.Redacted<string>
  readonly scopes: ReadonlyArray<Scope>
  /** A name for logs (never the token). */
  readonly name?: string
}

/**
 * Options of the server, decoded with unknown properties refused: a bad one is a
 * `MarkenConfigError` naming it.
 *
 * @since 0.1.0
 * @category models
 */
export const Options = Schema.Struct({
  tokens: Schema.Array(Token),
  /** The largest request body accepted, in bytes (default 1 MiB); larger ones get 413. */
  maxBodyBytes: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1024 * 1024 * 1024)), { exact: true })
})

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly tokens: ReadonlyArray<Token>
  /** The largest request body accepted, in bytes (default 1 MiB); larger ones get 413. */
  readonly maxBodyBytes?: number
}

/**
 * Options of {@link layerNode}: the server's and where it listens.
 *
 * @since 0.3.0
 * @category models
 */
export const NodeOptions = Schema.Struct({
  ...Options.fields,
  /** The port (0 picks a free one). */
  port: Schema.Int.pipe(Schema.between(0, 65535)),
  /** The interface (default 127.0.0.1). */
  host: Schema.optionalWith(Schema.String.pipe(Schema.minLength(1)), { exact: true })
})

/**
 * @since 0.3.0
 * @category models
 */
export interface NodeOptions extends Options {
  readonly port: number
  readonly host?: string
}

/**
 * Decodes server options (see {@link Options}).
 *
 * @since 0.3.0
 * @category constructors
 */
export const decodeOptions: (options: Options) => Effect.Effect<Options, MarkenConfigError> = decode(
  "MarkenServer",
  Options
)

const decodeNodeOptions: (options: NodeOptions) => Effect.Effect<NodeOptions, MarkenConfigError> = decode(
  "MarkenServer",
  NodeOptions
)

const digest = (s: string) => crypto.createHash("sha256").update(s).digest()

/**
 * The bearer check: `undefined` when the token is known and carries `scope`, else
 * the 401 or 403 error. Token digests are computed once and compared in constant time.
 */
const authorizer = (tokens: ReadonlyArray<Token>) => {
  const known = tokens.map((t) => ({
    digest: digest(Redacted.isRedacted(t.token) ? Redacted.value(t.token) : t.token),
    caller: { name: t.name ?? "token", scopes: new Set(t.scopes) }
  }))
  return (scope: Scope, value: string): Either.Either<Caller["Type"], UnauthorizedError | ForbiddenError> => {
    if (value.length === 0) return Either.left(new UnauthorizedError({ message: "a bearer token is required" }))
    const d = digest(value)
    for (const t of known) {
      if (crypto.timingSafeEqual(d, t.digest)) {
        return t.caller.scopes.has(scope)
          ? Either.right(t.caller)
          : Either.left(new ForbiddenError({ scope, message: `this token has no ${scope} scope` }))
      }
    }
    return Either.left(new UnauthorizedError({ message: "the bearer token is not valid" }))
  }
}

/**
 * The bearer-token middlewares: the token must be one of `tokens` (compared in
 * constant time, else 401) and carry the scope the endpoint needs (else 403).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerAuthorization = (
  tokens: ReadonlyArray<Token>
): Layer.Layer<ReadAuthorization | WriteAuthorization> => {
  const authorize = authorizer(tokens)
  const check = (scope: Scope) => (presented: Redacted.Redacted<string>) =>
    Effect.suspend(() => authorize(scope, Redacted.value(presented)))
  return Layer.mergeAll(
    Layer.succeed(ReadAuthorization, { bearer: check("read") }),
    Layer.succeed(WriteAuthorization, { bearer: check("write") })
  )
}

const storageFailure = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.catchIf(
    self,
    (e): e is Extract<E, { readonly _tag: "StorageError" }> =>
      typeof e === "object" && e !== null && (e as any)._tag === "StorageError",
    (e: any) => Effect.fail(new MarkenFailureError({ operation: e.operation, message: e.message }))
  ) as Effect.Effect<A, Exclude<E, { readonly _tag: "StorageError" }> | MarkenFailureError, R>

const toJson = (a: Annotation.Annotation): Schema.Schema.Type<typeof Annotation.Annotation> => {
  const { vectors, ...rest } = a
  return vectors
    ? { ...rest, vectors: Object.fromEntries(Object.entries(vectors).map(([k, v]) => [k, Array.from(v)])) }
    : rest
}

const TypesLive = HttpApiBuilder.group(MarkenApi, "types", (handlers) =>
  Effect.gen(function* () {
    const registry = yield* Registry
    return handlers
      .handle("list", () => storageFailure(registry.list()))
      .handle("get", ({ path }) =>
        storageFailure(registry.get(path.name, path.version)).pipe(
          Effect.catchTag("UnknownTypeError", (e) =>
            Effect.fail(new TypeNotFoundError({ type: path.name, version: path.version, message: e.message }))
          )
        )
      )
      .handle("register", ({ payload }) => storageFailure(registry.registerDefinition(payload)))
  })
)

const AnnotationsLive = HttpApiBuilder.group(MarkenApi, "annotations", (handlers) =>
  Effect.gen(function* () {
    const annotations = yield* Annotations.Annotations
    return handlers
      .handle("create", ({ payload }) => storageFailure(annotations.create(payload)).pipe(Effect.map(toJson)))
      .handle("get", ({ path, urlParams }) =>
        storageFailure(annotations.get(path.id, { withVectors: urlParams.withVectors ?? false })).pipe(
          Effect.map(toJson)
        )
      )
      .handle("update", ({ path, payload }) =>
        storageFailure(annotations.update(path.id, payload)).pipe(Effect.map(toJson))
      )
      .handle("remove", ({ path }) => storageFailure(annotations.remove(path.id)))
      .handle("query", ({ payload }) =>
        storageFailure(annotations.query(payload)).pipe(Effect.map((p) => ({ ...p, items: p.items.map(toJson) })))
      )
      .handle("count", ({ payload }) => storageFailure(annotations.count(payload.query, payload.by)))
  })
)

const OperationsLive = HttpApiBuilder.group(MarkenApi, "operations", (handlers) =>
  Effect.gen(function* () {
    const annotations = yield* Annotations.Annotations
    return handlers
      .handle("start", ({ payload }) => storageFailure(annotations.start(payload)))
      .handle("list", ({ urlParams }) => storageFailure(annotations.operations(urlParams)))
      .handle("get", ({ path }) => storageFailure(annotations.operation(path.id)))
      .handle("upsert", ({ path, payload }) =>
        storageFailure(annotations.upsert(path.id, payload.items, { atomic: payload.atomic ?? true }))
      )
      .handle("finish", ({ path }) => storageFailure(annotations.finish(path.id)))
      .handle("cancel", ({ path }) => storageFailure(annotations.cancel(path.id)))
  })
)

const SearchLive = HttpApiBuilder.group(MarkenApi, "search", (handlers) =>
  Effect.gen(function* () {
    const annotations = yield* Annotations.Annotations
    return handlers
      .handle("knn", ({ payload }) => storageFailure(annotations.search(payload)))
      .handle("pairs", ({ payload }) => storageFailure(annotations.pairs(payload)))
  })
)

/** The endpoints whose body is a query: their schema failures are `InvalidQueryError`, as in the library. */
const queryPaths = new Set(["/query", "/count", "/search", "/pairs"])

/**
 * The platform's decode error becomes `InvalidRequestError` (`InvalidQueryError` on the query
 * endpoints): a field path and a one-line message.
 */
const invalidRequests = HttpApiBuilder.middleware(
  MarkenApi,
  (app) =>
    Effect.catchIf(
      app as Effect.Effect<HttpServerResponse.HttpServerResponse, unknown, HttpServerRequest.HttpServerRequest>,
      (e): e is HttpApiError.HttpApiDecodeError =>
        typeof e === "object" && e !== null && (e as any)._tag === "HttpApiDecodeError",
      (e) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          const issue = fromIssues(e.issues, e.message)
          return Effect.fail(
            queryPaths.has(request.url.split("?")[0]!) ? new InvalidQueryError(issue) : new InvalidRequestError(issue)
          )
        })
    ) as typeof app
)

/**
 * The API implementation (needs `Annotations` and `Registry`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerApi = (options: Options) =>
  HttpApiBuilder.api(MarkenApi).pipe(
    Layer.provide(
      Layer.mergeAll(TypesLive, AnnotationsLive, OperationsLive, SearchLive).pipe(
        Layer.provide(layerAuthorization(options.tokens))
      )
    ),
    Layer.merge(invalidRequests)
  )

const json = (
  error: { readonly _tag: string; readonly message: string },
  status: number,
  headers?: Record<string, string>
) =>
  HttpServerResponse.unsafeJson(
    { ...error, _tag: error._tag, message: error.message },
    { status, ...(headers ? { headers } : {}) }
  )

const tooLarge = (max: number) =>
  json(new PayloadTooLargeError({ maxBytes: max, message: `the request body exceeds ${max} bytes` }), 413)

const errorText = (u: unknown): string =>
  u instanceof Error
    ? `${u.message} ${errorText((u as any).cause)}`
    : typeof u === "object" && u !== null && "cause" in u
      ? errorText((u as any).cause)
      : String(u ?? "")

/** The routes of the API: a pattern per path and the methods it has. */
const routes = (() => {
  const paths = openApi().paths as Record<string, Record<string, unknown>>
  return Object.entries(paths).map(([path, ops]) => ({
    pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, "[^/]+")}$`),
    methods: Object.keys(ops).map((m) => m.toUpperCase())
  }))
})()

/**
 * What every request passes before the API: the OpenAPI document at
 * `GET /openapi.json` (no token); a `content-length` over the limit is refused
 * unread, a chunked body is cut at the limit (413 either way); an unknown path
 * gets a JSON 404 and a known path with another method a JSON 405 with `Allow`;
 * a body that is not JSON gets 415, a JSON body that does not parse a 400
 * `InvalidRequestError` naming the body.
 *
 * @since 0.2.0
 * @category middleware
 */
export const guard =
  (max: number) =>
  (app: HttpApp.Default): HttpApp.Default =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const pathname = request.url.split("?")[0]!
      if (pathname === "/openapi.json" && (request.method === "GET" || request.method === "HEAD")) {
        const host = request.headers["host"]
        const doc = openApi()
        return HttpServerResponse.unsafeJson(
          host ? { ...doc, servers: [{ url: `http://${host}`, description: "This server" }] } : doc
        )
      }
      const length = Number(request.headers["content-length"] ?? Number.NaN)
      if (Number.isFinite(length) && length > max) return tooLarge(max)
      const route = routes.find((r) => r.pattern.test(pathname))
      if (route === undefined) {
        return json(
          new RouteNotFoundError({
            method: request.method,
            path: pathname,
            message: `no route ${pathname} (the routes are in /openapi.json)`
          }),
          404
        )
      }
      if (!route.methods.includes(request.method)) {
        return json(
          new MethodNotAllowedError({
            method: request.method,
            path: pathname,
            allowed: route.methods,
            message: `${pathname} does not take ${request.method}; it takes ${route.methods.join(", ")}`
          }),
          405,
          { allow: route.methods.join(", ") }
        )
      }
      const hasBody =
        request.method !== "GET" &&
        request.method !== "HEAD" &&
        (request.headers["transfer-encoding"] !== undefined || (Number.isFinite(length) && length > 0))
      if (hasBody) {
        const contentType = (request.headers["content-type"] ?? "application/json").toLowerCase()
        if (!/^application\/([a-z0-9.+-]+\+)?json\b/.test(contentType.trim())) {
          return json(
            new UnsupportedMediaTypeError({
              contentType,
              message: `the body is ${contentType}; send JSON with Content-Type: application/json`
            }),
            415
          )
        }
        // read once here (the request caches its text) so a bad body never reaches a handler
        const parsed = yield* Effect.either(request.json.pipe(HttpServerRequest.withMaxBodySize(Option.some(max))))
        if (parsed._tag === "Left") {
          const text = errorText(parsed.left.cause)
          if (text.includes("maxBytes exceeded")) return tooLarge(max)
          return json(
            new InvalidRequestError({
              path: "body",
              message: `the body is not valid JSON: ${text.trim().split("\n")[0]}`
            }),
            400
          )
        }
      }
      return yield* app
    })

/**
 * The body limit of earlier versions: now {@link guard}.
 *
 * @since 0.1.0
 * @category middleware
 */
export const bodyLimit = guard

/**
 * The server: the API, the body limit and `/openapi.json`, on the `HttpServer` in
 * context. Fails with `MarkenConfigError` when an option is wrong.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  never,
  MarkenConfigError,
  HttpServer.HttpServer | HttpRouter.HttpRouter.DefaultServices | Annotations.Annotations | Registry
> =>
  Layer.unwrapEffect(
    Effect.map(decodeOptions(options), (o) =>
      HttpApiBuilder.serve(guard(o.maxBodyBytes ?? defaultMaxBody)).pipe(Layer.provide(layerApi(o)))
    )
  )

const defaultMaxBody = 1024 * 1024

/**
 * The server on Node's HTTP server at `host:port` (port 0 picks a free port; read
 * it from `HttpServer.HttpServer`'s `address`). `POST /search` is answered on a
 * direct path (the bearer check, the `Knn` schema and the search, with the API's
 * statuses and error bodies, but no per-request fiber, tracing span or router), the
 * other routes by the `MarkenApi` implementation. Fails with `MarkenConfigError`
 * when an option is wrong, before it listens.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNode = (
  options: NodeOptions
): Layer.Layer<
  HttpServer.HttpServer,
  import("@effect/platform/HttpServerError").ServeError | MarkenConfigError,
  Annotations.Annotations | Registry
> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const o = yield* decodeNodeOptions(options)
      const annotations = yield* Annotations.Annotations
      const runtime = yield* Effect.runtime<never>()
      const authorize = authorizer(o.tokens)
      const knn = KnnRoute.make({
        maxBodyBytes: o.maxBodyBytes ?? defaultMaxBody,
        annotations,
        runtime,
        authorize: (token) => {
          const r = authorize("read", token)
          return Either.isLeft(r) ? { status: r.left instanceof ForbiddenError ? 403 : 401, body: r.left } : undefined
        }
      })
      const { host: _host, port: _port, ...server } = o
      return layer(server).pipe(
        Layer.provideMerge(
          NodeHttpServer.layer(() => new FastServer(knn), { port: o.port, host: o.host ?? "127.0.0.1" })
        )
      )
    })
  )

/** Node's server with the direct kNN route in front of the framework's handler. */
class FastServer extends http.Server {
  constructor(private readonly knn: (req: http.IncomingMessage, res: http.ServerResponse) => boolean) {
    super()
  }
  override emit(event: string | symbol, ...args: Array<any>): boolean {
    if (event === "request" && this.knn(args[0], args[1])) return true
    return super.emit(event as string, ...args)
  }
}
