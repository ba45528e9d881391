import { ParseResult, Schema } from "effect"

/** `payload` + `["a", 0, "b"]` -> `payload.a.0.b`. */
export const formatPath = (prefix: string, path: ReadonlyArray<PropertyKey>): string =>
  [prefix, ...path.map(String)].filter((s) => s.length > 0).join(".")

/** Any JSON value, as one named schema (one `JsonValue` component in the OpenAPI document). */
export const JsonValue = Schema.Unknown.annotations({
  identifier: "JsonValue",
  jsonSchema: { description: "Any JSON value (validated against the annotation type's JSON Schema where one applies)" }
})

/**
 * The one issue to report for a parse error: a field path and a one-line message.
 * Issues that only say an optional field "expected undefined" (the other side of an
 * optional's union) give way to the issue that names the real constraint.
 */
export const describeParseError = (
  e: ParseResult.ParseError
): { readonly path: ReadonlyArray<PropertyKey>; readonly message: string } => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(e)
  const issue = pick(issues)
  return issue
    ? { path: issue.path, message: oneLine(issue.message) }
    : { path: [], message: oneLine(e.message) || "invalid input" }
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, " ").trim()

const pick = <I extends { readonly message: string }>(issues: ReadonlyArray<I>): I | undefined =>
  issues.find((i) => !/^Expected undefined, actual /.test(i.message)) ?? issues[0]

/** `describeParseError` for issues already formatted (the platform's decode error), as `{ path, message }`. */
export const fromIssues = (
  issues: ReadonlyArray<{ readonly path: ReadonlyArray<PropertyKey>; readonly message: string }>,
  fallback: string
): { readonly path: string; readonly message: string } => {
  const issue = pick(issues)
  return issue
    ? { path: formatPath("", issue.path) || "body", message: oneLine(issue.message) }
    : { path: "body", message: oneLine(fallback) }
}
