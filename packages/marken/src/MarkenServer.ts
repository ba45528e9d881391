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
  HttpApiError,
  HttpServerRequest,
  HttpServerResponse,
  type HttpApp,
  type HttpRouter,
  type HttpServer
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer, Option, Redacted, type Schema } from "effect"
import * as crypto from "node:crypto"
import { createServer } from "node:http"
import type * as Annotation from "./Annotation.js"
import * as Annotations from "./Annotations.js"
import { MarkenFailure } from "./MarkenError.js"
import { Authorization, Caller, Forbidden, MarkenApi, openApi, Unauthorized, type Scope } from "./MarkenApi.js"
import { Registry } from "./Registry.js"

/**
 * A token the server accepts, with its scopes (`write` does not imply `read`).
 *
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
 * Options of the server.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly tokens: ReadonlyArray<Token>
  /** The largest request body accepted, in bytes (default 1 MiB); larger ones get 413. */
  readonly maxBodyBytes?: number
}

const digest = (s: string) => crypto.createHash("sha256").update(s).digest()

/**
 * The bearer-token middleware: the token must be one of `tokens` (compared in
 * constant time).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerAuthorization = (tokens: ReadonlyArray<Token>): Layer.Layer<Authorization> =>
  Layer.sync(Authorization, () => {
    // digests and callers once, not on every request
    const known = tokens.map((t) => ({
      digest: digest(Redacted.isRedacted(t.token) ? Redacted.value(t.token) : t.token),
      name: t.name ?? "token",
      scopes: t.scopes
    }))
    return {
      bearer: (presented) =>
        Effect.suspend(() => {
          const value = Redacted.value(presented)
          if (value.length === 0) return Effect.fail(new Unauthorized({ message: "a bearer token is required" }))
          const d = digest(value)
          for (const t of known) {
            if (crypto.timingSafeEqual(d, t.digest)) return Effect.succeed({ name: t.name, scopes: new Set(t.scopes) })
          }
          return Effect.fail(new Unauthorized({ message: "the bearer token is not valid" }))
        })
    }
  })

const requireScope = (scope: Scope) =>
  Effect.flatMap(Caller, (caller) =>
    caller.scopes.has(scope)
      ? Effect.void
      : Effect.fail(new Forbidden({ scope, message: `this token has no ${scope} scope` }))
  )

const storageFailure = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.catchIf(
    self,
    (e): e is Extract<E, { readonly _tag: "StorageError" }> =>
      typeof e === "object" && e !== null && (e as any)._tag === "StorageError",
    (e: any) => Effect.fail(new MarkenFailure({ operation: e.operation, message: e.message }))
  ) as Effect.Effect<A, Exclude<E, { readonly _tag: "StorageError" }> | MarkenFailure, R>

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
          Effect.catchTag("UnknownType", () => Effect.fail(new HttpApiError.NotFound()))
        )
      )
      .handle("register", ({ payload }) =>
        requireScope("write").pipe(Effect.zipRight(storageFailure(registry.registerDefinition(payload))))
      )
  })
)

const AnnotationsLive = HttpApiBuilder.group(MarkenApi, "annotations", (handlers) =>
  Effect.gen(function* () {
    const annotations = yield* Annotations.Annotations
    return handlers
      .handle("create", ({ payload }) =>
        requireScope("write").pipe(Effect.zipRight(storageFailure(annotations.create(payload))), Effect.map(toJson))
      )
      .handle("get", ({ path, urlParams }) =>
        storageFailure(annotations.get(path.id, { withVectors: urlParams.withVectors ?? false })).pipe(
          Effect.map(toJson)
        )
      )
      .handle("update", ({ path, payload }) =>
        requireScope("write").pipe(
          Effect.zipRight(storageFailure(annotations.update(path.id, payload))),
          Effect.map(toJson)
        )
      )
      .handle("remove", ({ path }) =>
        requireScope("write").pipe(Effect.zipRight(storageFailure(annotations.remove(path.id))))
      )
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
      .handle("start", ({ payload }) =>
        requireScope("write").pipe(Effect.zipRight(storageFailure(annotations.start(payload))))
      )
      .handle("list", ({ urlParams }) => storageFailure(annotations.operations(urlParams)))
      .handle("get", ({ path }) => storageFailure(annotations.operation(path.id)))
      .handle("upsert", ({ path, payload }) =>
        requireScope("write").pipe(
          Effect.zipRight(storageFailure(annotations.upsert(path.id, payload.items, { atomic: true })))
        )
      )
      .handle("finish", ({ path }) =>
        requireScope("write").pipe(Effect.zipRight(storageFailure(annotations.finish(path.id))))
      )
      .handle("cancel", ({ path }) =>
        requireScope("write").pipe(Effect.zipRight(storageFailure(annotations.cancel(path.id))))
      )
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

/**
 * The API implementation (needs `Annotations` and `Registry`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerApi = (options: Options) =>
  HttpApiBuilder.api(MarkenApi).pipe(
    Layer.provide([TypesLive, AnnotationsLive, OperationsLive, SearchLive, layerAuthorization(options.tokens)])
  )

const tooLarge = (max: number) =>
  HttpServerResponse.unsafeJson(
    { _tag: "PayloadTooLarge", message: `the request body exceeds ${max} bytes`, maxBytes: max },
    { status: 413 }
  )

const errorText = (u: unknown): string =>
  u instanceof Error
    ? `${u.message} ${errorText((u as any).cause)}`
    : typeof u === "object" && u !== null && "cause" in u
      ? errorText((u as any).cause)
      : String(u ?? "")

const badJson = (text: string) =>
  HttpServerResponse.unsafeJson(
    {
      _tag: "HttpApiDecodeError",
      issues: [{ _tag: "Type", path: ["body"], message: `the body is not valid JSON: ${text.trim()}` }],
      message: "the body is not valid JSON"
    },
    { status: 400 }
  )

/**
 * The body limit and JSON check, before any handler: a `content-length` over the
 * limit is refused unread, a chunked body is cut at the limit (413 either way), a
 * JSON body that does not parse gets a 400 naming the body. `GET /openapi.json`
 * serves the OpenAPI document without a token.
 *
 * @since 0.1.0
 * @category middleware
 */
export const bodyLimit =
  (max: number) =>
  (app: HttpApp.Default): HttpApp.Default =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      if (request.method === "GET" && request.url.split("?")[0] === "/openapi.json") {
        return HttpServerResponse.unsafeJson(openApi())
      }
      const length = Number(request.headers["content-length"] ?? Number.NaN)
      if (Number.isFinite(length) && length > max) return tooLarge(max)
      const hasBody =
        request.method !== "GET" &&
        request.method !== "HEAD" &&
        (request.headers["content-length"] !== undefined || request.headers["transfer-encoding"] !== undefined)
      if (hasBody && (request.headers["content-type"] ?? "application/json").includes("json")) {
        // read once here (the request caches its text) so a bad body never reaches a handler
        const parsed = yield* Effect.either(request.json.pipe(HttpServerRequest.withMaxBodySize(Option.some(max))))
        if (parsed._tag === "Left") {
          const text = errorText(parsed.left.cause)
          return text.includes("maxBytes exceeded") ? tooLarge(max) : badJson(text)
        }
      }
      return yield* app
    })

/**
 * The server: the API, the body limit and `/openapi.json`, on the `HttpServer` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  never,
  never,
  HttpServer.HttpServer | HttpRouter.HttpRouter.DefaultServices | Annotations.Annotations | Registry
> => HttpApiBuilder.serve(bodyLimit(options.maxBodyBytes ?? 1024 * 1024)).pipe(Layer.provide(layerApi(options)))

/**
 * The server on Node's HTTP server at `host:port` (port 0 picks a free port; read
 * it from `HttpServer.HttpServer`'s `address`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNode = (
  options: Options & { readonly port: number; readonly host?: string }
): Layer.Layer<
  HttpServer.HttpServer,
  import("@effect/platform/HttpServerError").ServeError,
  Annotations.Annotations | Registry
> =>
  layer(options).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: options.port, host: options.host ?? "127.0.0.1" }))
  )
