/**
 * The HTTP API of Marken as one `HttpApi` definition: the server implements it,
 * the OpenAPI document is generated from it and the typed client is derived from it.
 *
 * @since 0.1.0
 */
import {
  HttpApi,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpApiMiddleware,
  HttpApiSchema,
  HttpApiSecurity,
  OpenApi
} from "@effect/platform"
import type { HttpMethod } from "@effect/platform/HttpMethod"
import { Context, Schema } from "effect"
import * as Annotation from "./Annotation.js"
import * as AnnotationType from "./AnnotationType.js"
import {
  AnnotationNotFoundError,
  IncompatibleTypeError,
  InvalidAnnotationError,
  InvalidQueryError,
  MarkenFailureError,
  OperationClosedError,
  OperationNotFoundError,
  TypeNotFoundError,
  UnknownTypeError
} from "./MarkenError.js"
import { finishDocument } from "./internal/openapi.js"
import * as Operation from "./Operation.js"
import * as Query from "./Query.js"

/**
 * No bearer token, or one the server does not know (401).
 *
 * @since 0.1.0
 * @category errors
 */
export class UnauthorizedError extends Schema.TaggedError<UnauthorizedError>()(
  "UnauthorizedError",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 401 })
) {}

/**
 * The token lacks the scope the endpoint needs (403): a read token writing.
 *
 * @since 0.1.0
 * @category errors
 */
export class ForbiddenError extends Schema.TaggedError<ForbiddenError>()(
  "ForbiddenError",
  { scope: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 403 })
) {}

/**
 * A token's scopes.
 *
 * @since 0.1.0
 * @category models
 */
export const Scope = Schema.Literal("read", "write")

/**
 * @since 0.1.0
 * @category models
 */
export type Scope = Schema.Schema.Type<typeof Scope>

/**
 * The caller of the current request, as its token says.
 *
 * @since 0.1.0
 * @category tags
 */
export class Caller extends Context.Tag("@org/marken/MarkenApi/Caller")<
  Caller,
  { readonly name: string; readonly scopes: ReadonlySet<Scope> }
>() {}

/**
 * The request body exceeds the server's limit (413).
 *
 * @since 0.2.0
 * @category errors
 */
export class PayloadTooLargeError extends Schema.TaggedError<PayloadTooLargeError>()(
  "PayloadTooLargeError",
  { maxBytes: Schema.Number, message: Schema.String },
  HttpApiSchema.annotations({ status: 413 })
) {}

/**
 * The request body is not JSON (415): send `Content-Type: application/json`.
 *
 * @since 0.2.0
 * @category errors
 */
export class UnsupportedMediaTypeError extends Schema.TaggedError<UnsupportedMediaTypeError>()(
  "UnsupportedMediaTypeError",
  { contentType: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 415 })
) {}

/**
 * The request does not match the endpoint's schema (400): the body is not valid
 * JSON, a field is missing or out of range. `path` names the field
 * (`"body"`, `"time.endNs"`, `"items.3.payload"`), `message` says what is wrong in one line.
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidRequestError extends Schema.TaggedError<InvalidRequestError>()(
  "InvalidRequestError",
  { path: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 400 })
) {}

/**
 * No route has this path (404).
 *
 * @since 0.2.0
 * @category errors
 */
export class RouteNotFoundError extends Schema.TaggedError<RouteNotFoundError>()(
  "RouteNotFoundError",
  { method: Schema.String, path: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

/**
 * The path exists but not with this method (405); `allowed` lists the methods it
 * has (also in the `Allow` header).
 *
 * @since 0.2.0
 * @category errors
 */
export class MethodNotAllowedError extends Schema.TaggedError<MethodNotAllowedError>()(
  "MethodNotAllowedError",
  { method: Schema.String, path: Schema.String, allowed: Schema.Array(Schema.String), message: Schema.String },
  HttpApiSchema.annotations({ status: 405 })
) {}

/**
 * Bearer-token authentication of the endpoints that read: the token must be known
 * (401) and carry the `read` scope (403).
 *
 * @since 0.2.0
 * @category middleware
 */
export class ReadAuthorization extends HttpApiMiddleware.Tag<ReadAuthorization>()(
  "@org/marken/MarkenApi/ReadAuthorization",
  {
    failure: Schema.Union(UnauthorizedError, ForbiddenError),
    provides: Caller,
    security: { bearer: HttpApiSecurity.bearer }
  }
) {}

/**
 * Bearer-token authentication of the endpoints that write: the token must be known
 * (401) and carry the `write` scope (403). `write` does not imply `read`.
 *
 * @since 0.2.0
 * @category middleware
 */
export class WriteAuthorization extends HttpApiMiddleware.Tag<WriteAuthorization>()(
  "@org/marken/MarkenApi/WriteAuthorization",
  {
    failure: Schema.Union(UnauthorizedError, ForbiddenError),
    provides: Caller,
    security: { bearer: HttpApiSecurity.bearer }
  }
) {}

type Endpoint<N extends string, M extends HttpMethod, P, U, Pl, H, S, E, R, RE> = HttpApiEndpoint.HttpApiEndpoint<
  N,
  M,
  P,
  U,
  Pl,
  H,
  S,
  E,
  R,
  RE
>

/** The summary, description and scope of an endpoint in the OpenAPI document. */
const doc = (scope: Scope, summary: string, description?: string) =>
  Context.make(OpenApi.Summary, summary).pipe(
    Context.add(
      OpenApi.Description,
      `${description ? `${description}\n\n` : ""}Needs a bearer token with the \`${scope}\` scope.`
    ),
    // the requirement names the scope (OpenAPI 3.1 allows role names for non-OAuth schemes)
    Context.add(OpenApi.Transform, (op: Record<string, any>) => ({ ...op, security: [{ bearer: [scope] }] }))
  )

/** An endpoint that reads: bearer token with the `read` scope. */
const read = <N extends string, M extends HttpMethod, P, U, Pl, H, S, E, R, RE>(
  endpoint: Endpoint<N, M, P, U, Pl, H, S, E, R, RE>,
  summary: string,
  description?: string
) => endpoint.middleware(ReadAuthorization).annotateContext(doc("read", summary, description))

/** An endpoint that writes: bearer token with the `write` scope. */
const write = <N extends string, M extends HttpMethod, P, U, Pl, H, S, E, R, RE>(
  endpoint: Endpoint<N, M, P, U, Pl, H, S, E, R, RE>,
  summary: string,
  description?: string
) => endpoint.middleware(WriteAuthorization).annotateContext(doc("write", summary, description))

/** An endpoint with a JSON body can also answer 413 and 415. */
const withBody = <N extends string, M extends HttpMethod, P, U, Pl, H, S, E, R, RE>(
  endpoint: Endpoint<N, M, P, U, Pl, H, S, E, R, RE>
) => endpoint.addError(PayloadTooLargeError).addError(UnsupportedMediaTypeError)

const id = HttpApiSchema.param("id", Schema.String)
const name = HttpApiSchema.param("name", Schema.String)
const version = HttpApiSchema.param("version", Schema.String)

/**
 * A page of query results.
 *
 * @since 0.1.0
 * @category models
 */
export const Page = Schema.Struct({ items: Schema.Array(Annotation.Annotation), next: Schema.optional(Schema.String) })

/**
 * One group of a count.
 *
 * @since 0.1.0
 * @category models
 */
export const Group = Schema.Struct({ key: Schema.NullOr(Schema.String), count: Schema.Number })

/**
 * The schema registry endpoints.
 *
 * @since 0.1.0
 * @category groups
 */
export class Types extends HttpApiGroup.make("types")
  .add(
    read(
      HttpApiEndpoint.get("list", "/types").addSuccess(Schema.Array(AnnotationType.Definition)),
      "List annotation types",
      "Every registered type version."
    )
  )
  .add(
    read(
      HttpApiEndpoint.get("get")`/types/${name}/${version}`
        .addSuccess(AnnotationType.Definition)
        .addError(TypeNotFoundError),
      "Get one annotation type version"
    )
  )
  .add(
    write(
      withBody(
        HttpApiEndpoint.post("register", "/types")
          .setPayload(AnnotationType.Definition)
          .addSuccess(AnnotationType.Definition, { status: 201 })
          .addError(IncompatibleTypeError)
      ),
      "Register an annotation type version",
      "Idempotent for the same schema; a minor version may only add optional fields."
    )
  )
  .annotate(OpenApi.Description, "Annotation types: each version with the JSON Schema of its payload") {}

/**
 * Annotation CRUD, queries and counts.
 *
 * @since 0.1.0
 * @category groups
 */
export class Annotations extends HttpApiGroup.make("annotations")
  .add(
    write(
      withBody(
        HttpApiEndpoint.post("create", "/annotations")
          .setPayload(Annotation.Input)
          .addSuccess(Annotation.Annotation, { status: 201 })
          .addError(InvalidAnnotationError)
          .addError(UnknownTypeError)
      ),
      "Create an annotation",
      "The annotation joins the current run of its producer for its type version."
    )
  )
  .add(
    read(
      HttpApiEndpoint.get("get")`/annotations/${id}`
        .setUrlParams(Schema.Struct({ withVectors: Schema.optional(Schema.BooleanFromString) }))
        .addSuccess(Annotation.Annotation)
        .addError(AnnotationNotFoundError),
      "Get an annotation"
    )
  )
  .add(
    write(
      withBody(
        HttpApiEndpoint.patch("update")`/annotations/${id}`
          .setPayload(Annotation.Patch)
          .addSuccess(Annotation.Annotation)
          .addError(AnnotationNotFoundError)
          .addError(InvalidAnnotationError)
          .addError(UnknownTypeError)
      ),
      "Update an annotation",
      "The fields given replace the stored ones."
    )
  )
  .add(
    write(HttpApiEndpoint.del("remove")`/annotations/${id}`.addError(AnnotationNotFoundError), "Delete an annotation")
  )
  .add(
    read(
      withBody(
        HttpApiEndpoint.post("query", "/query").setPayload(Query.Query).addSuccess(Page).addError(InvalidQueryError)
      ),
      "Query annotations",
      "By entity, type, time range, region, payload conditions, label and confidence; pages with a cursor."
    )
  )
  .add(
    read(
      withBody(
        HttpApiEndpoint.post("count", "/count")
          .setPayload(Schema.Struct({ query: Query.Query, by: Query.GroupBy }))
          .addSuccess(Schema.Array(Group))
          .addError(InvalidQueryError)
      ),
      "Count annotations by group"
    )
  )
  .annotate(OpenApi.Description, "Annotations: create, read, update, delete, query and count") {}

/**
 * The body of an upsert: the items, and whether one invalid item fails the call.
 *
 * @since 0.2.0
 * @category models
 */
export const UpsertBody = Schema.Struct({
  items: Schema.Array(Annotation.Item).pipe(Schema.maxItems(10_000)),
  atomic: Schema.optional(Schema.Boolean).annotations({
    description:
      "true (the default over HTTP): the first invalid item fails the call with 400 and nothing is written, so " +
      "`rejected` is empty. false: invalid items are listed in `rejected` (index, field path, message) and the " +
      "others are written."
  })
}).annotations({ identifier: "UpsertBody" })

/**
 * Annotation operations: start, upsert, finish, cancel.
 *
 * @since 0.1.0
 * @category groups
 */
export class Operations extends HttpApiGroup.make("operations")
  .add(
    write(
      withBody(
        HttpApiEndpoint.post("start", "/operations")
          .setPayload(Operation.Start)
          .addSuccess(Operation.Operation, { status: 201 })
          .addError(UnknownTypeError)
          .addError(InvalidAnnotationError)
      ),
      "Start an operation",
      "A run of a producer over a type version, invisible to readers until it finishes."
    )
  )
  .add(
    read(
      HttpApiEndpoint.get("list", "/operations")
        .setUrlParams(
          Schema.Struct({
            type: Schema.String,
            version: Schema.optional(Schema.String),
            producer: Schema.optional(Schema.String)
          })
        )
        .addSuccess(Schema.Array(Operation.Operation)),
      "List operations",
      "Operations of a type version (and producer key), newest first."
    )
  )
  .add(
    read(
      HttpApiEndpoint.get("get")`/operations/${id}`.addSuccess(Operation.Operation).addError(OperationNotFoundError),
      "Get an operation"
    )
  )
  .add(
    write(
      withBody(
        HttpApiEndpoint.post("upsert")`/operations/${id}/annotations`
          .setPayload(UpsertBody)
          .addSuccess(Operation.UpsertResult)
          .addError(OperationNotFoundError)
          .addError(OperationClosedError)
          .addError(InvalidAnnotationError)
          .addError(UnknownTypeError)
      ),
      "Write annotations into an open operation",
      "An item with the key of an earlier one in the same operation replaces it. Atomic by default (see `atomic`)."
    )
  )
  .add(
    write(
      HttpApiEndpoint.post("finish")`/operations/${id}/finish`
        .addSuccess(Operation.Operation)
        .addError(OperationNotFoundError)
        .addError(OperationClosedError),
      "Finish an operation",
      "Makes it the run readers see for its producer, replacing the previous one at once."
    )
  )
  .add(
    write(
      HttpApiEndpoint.post("cancel")`/operations/${id}/cancel`
        .addSuccess(Operation.Operation)
        .addError(OperationNotFoundError)
        .addError(OperationClosedError),
      "Cancel an operation",
      "Removes what it wrote."
    )
  )
  .annotate(
    OpenApi.Description,
    "Annotation operations: runs of a producer that readers see at once when they finish"
  ) {}

/**
 * Vector search: kNN with filters, and pairs.
 *
 * @since 0.1.0
 * @category groups
 */
export class Search extends HttpApiGroup.make("search")
  .add(
    read(
      withBody(
        HttpApiEndpoint.post("knn", "/search")
          .setPayload(Query.Knn)
          .addSuccess(Schema.Array(Query.Hit))
          .addError(InvalidQueryError)
          .addError(UnknownTypeError)
      ),
      "Nearest annotations to a vector",
      "The k nearest annotations (HNSW) among those matching the filter; k hits whenever k match."
    )
  )
  .add(
    read(
      withBody(
        HttpApiEndpoint.post("pairs", "/pairs")
          .setPayload(Query.Pairs)
          .addSuccess(Schema.Array(Query.Pair))
          .addError(InvalidQueryError)
          .addError(UnknownTypeError)
      ),
      "Most similar pairs between two sets"
    )
  )
  .annotate(OpenApi.Description, "Vector search: filtered kNN and the most similar pairs between two sets") {}

/**
 * The whole API.
 *
 * @since 0.1.0
 * @category api
 */
export class MarkenApi extends HttpApi.make("marken")
  .add(Types)
  .add(Annotations)
  .add(Operations)
  .add(Search)
  .addError(MarkenFailureError)
  .addError(InvalidRequestError)
  .annotate(OpenApi.Title, "Marken")
  .annotate(OpenApi.Version, "0.2.0")
  .annotate(OpenApi.Description, "Typed, versioned annotations with temporal, spatial, payload and vector search")
  .annotate(OpenApi.License, { name: "MIT", url: "https://opensource.org/licenses/MIT" })
  .annotate(OpenApi.Servers, [{ url: "http://127.0.0.1:8080", description: "A local Marken server" }])
  .annotate(OpenApi.Transform, (spec) => finishDocument(spec as any) as any) {}

/**
 * The OpenAPI document of the API.
 *
 * @since 0.1.0
 * @category api
 */
export const openApi = (): OpenApi.OpenAPISpec => OpenApi.fromApi(MarkenApi)
