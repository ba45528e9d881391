/**
 * The HTTP API of Marken as one `HttpApi` definition: the server implements it,
 * the OpenAPI document is generated from it and the typed client is derived from it.
 *
 * @since 0.1.0
 */
import {
  HttpApi,
  HttpApiEndpoint,
  HttpApiError,
  HttpApiGroup,
  HttpApiMiddleware,
  HttpApiSchema,
  HttpApiSecurity,
  OpenApi
} from "@effect/platform"
import { Context, Schema } from "effect"
import * as Annotation from "./Annotation.js"
import * as AnnotationType from "./AnnotationType.js"
import {
  AnnotationNotFound,
  IncompatibleType,
  InvalidAnnotation,
  InvalidQuery,
  MarkenFailure,
  OperationClosed,
  OperationNotFound,
  UnknownType
} from "./MarkenError.js"
import * as Operation from "./Operation.js"
import * as Query from "./Query.js"

/**
 * No bearer token, or one the server does not know (401).
 *
 * @since 0.1.0
 * @category errors
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 401 })
) {}

/**
 * The token lacks the scope the endpoint needs (403): a read token writing.
 *
 * @since 0.1.0
 * @category errors
 */
export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
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
 * Bearer-token authentication of every endpoint.
 *
 * @since 0.1.0
 * @category middleware
 */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("@org/marken/MarkenApi/Authorization", {
  failure: Unauthorized,
  provides: Caller,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

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
  .add(HttpApiEndpoint.get("list", "/types").addSuccess(Schema.Array(AnnotationType.Definition)))
  .add(
    HttpApiEndpoint.get("get")`/types/${name}/${version}`
      .addSuccess(AnnotationType.Definition)
      .addError(HttpApiError.NotFound)
  )
  .add(
    HttpApiEndpoint.post("register", "/types")
      .setPayload(AnnotationType.Definition)
      .addSuccess(AnnotationType.Definition, { status: 201 })
      .addError(IncompatibleType)
      .addError(Forbidden)
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
    HttpApiEndpoint.post("create", "/annotations")
      .setPayload(Annotation.Input)
      .addSuccess(Annotation.Annotation, { status: 201 })
      .addError(InvalidAnnotation)
      .addError(UnknownType)
      .addError(Forbidden)
  )
  .add(
    HttpApiEndpoint.get("get")`/annotations/${id}`
      .setUrlParams(Schema.Struct({ withVectors: Schema.optional(Schema.BooleanFromString) }))
      .addSuccess(Annotation.Annotation)
      .addError(AnnotationNotFound)
  )
  .add(
    HttpApiEndpoint.patch("update")`/annotations/${id}`
      .setPayload(Annotation.Patch)
      .addSuccess(Annotation.Annotation)
      .addError(AnnotationNotFound)
      .addError(InvalidAnnotation)
      .addError(UnknownType)
      .addError(Forbidden)
  )
  .add(HttpApiEndpoint.del("remove")`/annotations/${id}`.addError(AnnotationNotFound).addError(Forbidden))
  .add(HttpApiEndpoint.post("query", "/query").setPayload(Query.Query).addSuccess(Page).addError(InvalidQuery))
  .add(
    HttpApiEndpoint.post("count", "/count")
      .setPayload(Schema.Struct({ query: Query.Query, by: Query.GroupBy }))
      .addSuccess(Schema.Array(Group))
      .addError(InvalidQuery)
  ) {}

/**
 * Annotation operations: start, upsert, finish, cancel.
 *
 * @since 0.1.0
 * @category groups
 */
export class Operations extends HttpApiGroup.make("operations")
  .add(
    HttpApiEndpoint.post("start", "/operations")
      .setPayload(Operation.Start)
      .addSuccess(Operation.Operation, { status: 201 })
      .addError(UnknownType)
      .addError(InvalidAnnotation)
      .addError(Forbidden)
  )
  .add(
    HttpApiEndpoint.get("list", "/operations")
      .setUrlParams(
        Schema.Struct({
          type: Schema.String,
          version: Schema.optional(Schema.String),
          producer: Schema.optional(Schema.String)
        })
      )
      .addSuccess(Schema.Array(Operation.Operation))
  )
  .add(HttpApiEndpoint.get("get")`/operations/${id}`.addSuccess(Operation.Operation).addError(OperationNotFound))
  .add(
    HttpApiEndpoint.post("upsert")`/operations/${id}/annotations`
      .setPayload(Schema.Struct({ items: Schema.Array(Annotation.Item).pipe(Schema.maxItems(10_000)) }))
      .addSuccess(Operation.UpsertResult)
      .addError(OperationNotFound)
      .addError(OperationClosed)
      .addError(InvalidAnnotation)
      .addError(UnknownType)
      .addError(Forbidden)
  )
  .add(
    HttpApiEndpoint.post("finish")`/operations/${id}/finish`
      .addSuccess(Operation.Operation)
      .addError(OperationNotFound)
      .addError(OperationClosed)
      .addError(Forbidden)
  )
  .add(
    HttpApiEndpoint.post("cancel")`/operations/${id}/cancel`
      .addSuccess(Operation.Operation)
      .addError(OperationNotFound)
      .addError(OperationClosed)
      .addError(Forbidden)
  ) {}

/**
 * Vector search: kNN with filters, and pairs.
 *
 * @since 0.1.0
 * @category groups
 */
export class Search extends HttpApiGroup.make("search")
  .add(
    HttpApiEndpoint.post("knn", "/search")
      .setPayload(Query.Knn)
      .addSuccess(Schema.Array(Query.Hit))
      .addError(InvalidQuery)
      .addError(UnknownType)
  )
  .add(
    HttpApiEndpoint.post("pairs", "/pairs")
      .setPayload(Query.Pairs)
      .addSuccess(Schema.Array(Query.Pair))
      .addError(InvalidQuery)
      .addError(UnknownType)
  ) {}

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
  .addError(MarkenFailure)
  .middleware(Authorization)
  .annotate(OpenApi.Title, "Marken")
  .annotate(OpenApi.Description, "Typed, versioned annotations with temporal, spatial, payload and vector search") {}

/**
 * The OpenAPI document of the API.
 *
 * @since 0.1.0
 * @category api
 */
export const openApi = (): OpenApi.OpenAPISpec => OpenApi.fromApi(MarkenApi)
