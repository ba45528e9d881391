/**
 * The typed client of the Marken HTTP API, derived from the same `MarkenApi`
 * definition the server implements.
 *
 * @since 0.1.0
 */
import { HttpApiClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { type Effect, Redacted } from "effect"
import { MarkenApi } from "./MarkenApi.js"

/**
 * Makes a client for a server at `baseUrl`, sending `token` as a bearer token.
 * Needs an `HttpClient` (e.g. `FetchHttpClient.layer` or `NodeHttpClient.layer`).
 *
 * @example
 * ```ts
 * const client = yield* MarkenClient.make({ baseUrl: "http://127.0.0.1:8080", token })
 * const hits = yield* client.search.knn({ payload: { type: "shot", version: "1.0", field: "embedding", vector, k: 10 } })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: { readonly baseUrl: string; readonly token: string | Redacted.Redacted<string> }) =>
  HttpApiClient.make(MarkenApi, {
    baseUrl: options.baseUrl,
    transformClient: HttpClient.mapRequest(
      HttpClientRequest.bearerToken(Redacted.isRedacted(options.token) ? Redacted.value(options.token) : options.token)
    )
  })

/**
 * The client's type.
 *
 * @since 0.1.0
 * @category models
 */
export type Client = Effect.Effect.Success<ReturnType<typeof make>>
