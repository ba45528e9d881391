/**
 * `POST /search` on Node's server without the per-request pipeline of the HTTP
 * framework (a fiber for the request, a tracing span, a request scope, the router,
 * the payload schema through the platform, the response through a stream): the
 * bearer check, the body, the `Knn` schema and the search, answered with the same
 * statuses and error bodies as the `MarkenApi` definition. Measured on a loaded
 * two-core machine it is about a third of the CPU time per request of the generic
 * path (see bench/marken.ts, `--only http`).
 *
 * Only requests the fast path can answer completely are taken: a `content-length`
 * within the limit and a JSON content type. Everything else (chunked bodies, other
 * content types, oversized bodies, every other route) goes through the generic
 * path unchanged.
 */
import { StorageError } from "@org/storage"
import { Cause, Either, Exit, Option, ParseResult, Runtime, Schema } from "effect"
import type * as http from "node:http"
import type * as Annotations from "../Annotations.js"
import { InvalidQueryError, MarkenFailureError } from "../MarkenError.js"
import { InvalidRequestError } from "../MarkenApi.js"
import * as Query from "../Query.js"
import { fromIssues } from "./codec.js"

/** An error the route answers with: its JSON body is the error's fields, its status from the API definition. */
export interface Answer {
  readonly status: number
  readonly body: { readonly _tag: string; readonly message: string }
}

export interface Options {
  readonly maxBodyBytes: number
  /** The bearer check of the `read` scope: undefined when allowed, else the 401/403 answer. */
  readonly authorize: (token: string) => Answer | undefined
  readonly annotations: Annotations.Service
  readonly runtime: Runtime.Runtime<never>
}

const decodeKnn = Schema.decodeUnknownEither(Query.Knn)
/** The statuses of the errors `search` can fail with (as the API definition declares them). */
const statusOf: Record<string, number> = {
  InvalidQueryError: 400,
  UnknownTypeError: 400,
  MarkenFailureError: 500
}
const jsonType = /^application\/([a-z0-9.+-]+\+)?json\b/

const send = (res: http.ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

const errorBody = (error: { readonly _tag: string; readonly message: string }) => ({
  ...error,
  _tag: error._tag,
  message: error.message
})

/**
 * The route: `(req, res) => boolean`, true when it took the request (and will answer it).
 */
export const make = (options: Options) => {
  const runFork = Runtime.runFork(options.runtime)
  const answer = (res: http.ServerResponse, text: string, token: string) => {
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch (e) {
      const message = StorageError.messageOf(e)
      return send(
        res,
        400,
        errorBody(
          new InvalidRequestError({ path: "body", message: `the body is not valid JSON: ${message.split("\n")[0]}` })
        )
      )
    }
    const denied = options.authorize(token)
    if (denied) return send(res, denied.status, errorBody(denied.body))
    const decoded = decodeKnn(body)
    if (Either.isLeft(decoded)) {
      const issue = fromIssues(
        ParseResult.ArrayFormatter.formatErrorSync(decoded.left),
        ParseResult.TreeFormatter.formatErrorSync(decoded.left)
      )
      return send(res, 400, errorBody(new InvalidQueryError(issue)))
    }
    const fiber = runFork(options.annotations.search(decoded.right))
    fiber.addObserver((exit) => {
      if (res.destroyed) return
      if (Exit.isSuccess(exit)) return send(res, 200, exit.value)
      const failure = Option.getOrUndefined(Cause.failureOption(exit.cause))
      if (failure && failure._tag in statusOf) return send(res, statusOf[failure._tag]!, errorBody(failure))
      const message = failure ? failure.message : Cause.pretty(exit.cause).split("\n")[0]!
      send(res, 500, errorBody(new MarkenFailureError({ operation: "search", message })))
    })
    res.on("close", () => {
      if (!res.writableEnded) fiber.unsafeInterruptAsFork(fiber.id())
    })
  }

  return (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    if (req.method !== "POST") return false
    const url = req.url ?? ""
    if (url !== "/search" && !url.startsWith("/search?")) return false
    const length = Number(req.headers["content-length"] ?? Number.NaN)
    if (!(length > 0 && length <= options.maxBodyBytes) || req.headers["transfer-encoding"] !== undefined) return false
    const contentType = req.headers["content-type"]
    if (contentType !== undefined && !jsonType.test(contentType.toLowerCase().trim())) return false
    const token = (req.headers.authorization ?? "").slice("Bearer ".length)
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () =>
      answer(res, chunks.length === 1 ? chunks[0]!.toString() : Buffer.concat(chunks).toString(), token)
    )
    req.on("error", () => res.destroy())
    return true
  }
}
