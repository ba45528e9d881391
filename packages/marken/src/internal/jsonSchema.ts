/**
 * A small JSON Schema (draft-07 subset) validator: enough for what `JSONSchema.make`
 * emits, so payloads from untyped HTTP clients are checked against the stored schema
 * of a type version even when no Effect schema for it lives in this process.
 */

export type JsonSchema = { readonly [key: string]: unknown }

export interface Issue {
  readonly path: ReadonlyArray<string | number>
  readonly message: string
}

const typeOf = (v: unknown): string =>
  v === null ? "null" : Array.isArray(v) ? "array" : typeof v === "number" && Number.isInteger(v) ? "integer" : typeof v

const matchesType = (v: unknown, t: string): boolean => {
  const actual = typeOf(v)
  if (t === "number") return actual === "number" || actual === "integer"
  return actual === t
}

const deepEqual = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a as object)
  const kb = Object.keys(b as object)
  if (ka.length !== kb.length) return false
  return ka.every((k) => deepEqual((a as any)[k], (b as any)[k]))
}

/** Resolves `#/$defs/X` (and `#/definitions/X`) against the root schema. */
const resolveRef = (root: JsonSchema, ref: string): JsonSchema | undefined => {
  const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(ref)
  if (!m) return undefined
  const defs = root[m[1]!] as Record<string, JsonSchema> | undefined
  return defs?.[m[2]!.replace(/~1/g, "/").replace(/~0/g, "~")]
}

const describe = (v: unknown) => {
  const s = JSON.stringify(v)
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s
}

/** Validates `value`, returning the first issue found (deepest path first) or undefined. */
export const validate = (root: JsonSchema, value: unknown): Issue | undefined => check(root, root, value, [], 0)

const check = (
  root: JsonSchema,
  schema: JsonSchema | boolean,
  value: unknown,
  path: Array<string | number>,
  depth: number
): Issue | undefined => {
  if (schema === true) return undefined
  if (schema === false) return { path, message: "is not allowed" }
  if (depth > 64) return { path, message: "schema nests too deeply" }
  if (typeof schema.$ref === "string") {
    const target = resolveRef(root, schema.$ref)
    if (!target) return { path, message: `unresolvable schema reference ${schema.$ref}` }
    const issue = check(root, target, value, path, depth + 1)
    if (issue) return issue
  }
  if (schema.const !== undefined && !deepEqual(schema.const, value)) {
    return { path, message: `expected ${describe(schema.const)}, got ${describe(value)}` }
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => deepEqual(e, value))) {
    return { path, message: `expected one of ${schema.enum.map(describe).join(", ")}, got ${describe(value)}` }
  }
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as Array<string>) : [schema.type as string]
    if (!types.some((t) => matchesType(value, t))) {
      return { path, message: `expected ${types.join(" or ")}, got ${typeOf(value)} ${describe(value)}` }
    }
  }
  for (const key of ["anyOf", "oneOf"] as const) {
    const options = schema[key]
    if (Array.isArray(options)) {
      const issues = options.map((o) => check(root, o as JsonSchema, value, path, depth + 1))
      if (issues.every((i) => i !== undefined)) {
        // report the option that got furthest
        const best = issues.reduce((a, b) => (b!.path.length > a!.path.length ? b : a))!
        return best.path.length > path.length ? best : { path, message: `matches none of the allowed forms` }
      }
    }
  }
  if (Array.isArray(schema.allOf)) {
    for (const s of schema.allOf) {
      const issue = check(root, s as JsonSchema, value, path, depth + 1)
      if (issue) return issue
    }
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return { path, message: "expected a finite number" }
    if (typeof schema.minimum === "number" && value < schema.minimum)
      return { path, message: `expected >= ${schema.minimum}, got ${value}` }
    if (typeof schema.maximum === "number" && value > schema.maximum)
      return { path, message: `expected <= ${schema.maximum}, got ${value}` }
    if (typeof schema.exclusiveMinimum === "number" && value <= schema.exclusiveMinimum)
      return { path, message: `expected > ${schema.exclusiveMinimum}, got ${value}` }
    if (typeof schema.exclusiveMaximum === "number" && value >= schema.exclusiveMaximum)
      return { path, message: `expected < ${schema.exclusiveMaximum}, got ${value}` }
    if (
      typeof schema.multipleOf === "number" &&
      Math.abs(value / schema.multipleOf - Math.round(value / schema.multipleOf)) > 1e-9
    )
      return { path, message: `expected a multiple of ${schema.multipleOf}` }
  }
  if (typeof value === "string") {
    if (typeof schema.minLength === "number" && value.length < schema.minLength)
      return { path, message: `expected at least ${schema.minLength} characters` }
    if (typeof schema.maxLength === "number" && value.length > schema.maxLength)
      return { path, message: `expected at most ${schema.maxLength} characters` }
    if (typeof schema.pattern === "string" && !new RegExp(schema.pattern, "u").test(value))
      return { path, message: `expected to match ${schema.pattern}` }
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === "number" && value.length < schema.minItems)
      return { path, message: `expected at least ${schema.minItems} items` }
    if (typeof schema.maxItems === "number" && value.length > schema.maxItems)
      return { path, message: `expected at most ${schema.maxItems} items` }
    const prefix = Array.isArray(schema.prefixItems) ? (schema.prefixItems as Array<JsonSchema>) : []
    const items = Array.isArray(schema.items) ? (schema.items as Array<JsonSchema>) : prefix
    const rest = Array.isArray(schema.items)
      ? (schema.additionalItems as JsonSchema | boolean | undefined)
      : (schema.items as JsonSchema | undefined)
    for (let i = 0; i < value.length; i++) {
      const s = i < items.length ? items[i] : rest
      if (s === undefined) continue
      const issue = check(root, s, value[i], [...path, i], depth + 1)
      if (issue) return issue
    }
  }
  if (typeOf(value) === "object") {
    const obj = value as Record<string, unknown>
    const props = (schema.properties ?? {}) as Record<string, JsonSchema>
    if (Array.isArray(schema.required)) {
      for (const k of schema.required as Array<string>) {
        if (!(k in obj) || obj[k] === undefined) return { path: [...path, k], message: "is missing" }
      }
    }
    for (const [k, v] of Object.entries(obj)) {
      if (k in props) {
        const issue = check(root, props[k]!, v, [...path, k], depth + 1)
        if (issue) return issue
      } else if (schema.additionalProperties === false) {
        return { path: [...path, k], message: "is not an allowed field" }
      } else if (typeof schema.additionalProperties === "object" && schema.additionalProperties !== null) {
        const issue = check(root, schema.additionalProperties as JsonSchema, v, [...path, k], depth + 1)
        if (issue) return issue
      }
    }
  }
  return undefined
}

const stripDocs = (s: unknown): unknown => {
  if (Array.isArray(s)) return s.map(stripDocs)
  if (s === null || typeof s !== "object") return s
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(s)) {
    if (k === "description" || k === "title" || k === "examples" || k === "$comment") continue
    out[k] = stripDocs(v)
  }
  return out
}

/**
 * Checks that `next` only adds optional fields to `previous` (both object schemas):
 * same required fields, every previous field unchanged. Returns the offending field
 * path and a message, or undefined when compatible.
 */
export const onlyAddsOptional = (previous: JsonSchema, next: JsonSchema): Issue | undefined => {
  if (previous.type !== "object" || next.type !== "object") {
    return deepEqual(stripDocs(previous), stripDocs(next))
      ? undefined
      : { path: [], message: "a payload that is not an object may not change in a minor version" }
  }
  const req0 = new Set((previous.required as Array<string> | undefined) ?? [])
  const req1 = new Set((next.required as Array<string> | undefined) ?? [])
  for (const k of req1) {
    if (!req0.has(k)) return { path: [k], message: "a minor version may not add a required field" }
  }
  for (const k of req0) {
    if (!req1.has(k)) return { path: [k], message: "a minor version may not make a required field optional" }
  }
  const p0 = (previous.properties ?? {}) as Record<string, JsonSchema>
  const p1 = (next.properties ?? {}) as Record<string, JsonSchema>
  for (const [k, s] of Object.entries(p0)) {
    if (!(k in p1)) return { path: [k], message: "a minor version may not remove a field" }
    if (!deepEqual(stripDocs(s), stripDocs(p1[k])))
      return { path: [k], message: "a minor version may not change a field's schema" }
  }
  for (const key of ["$defs", "definitions"]) {
    const d0 = (previous[key] ?? {}) as Record<string, unknown>
    const d1 = (next[key] ?? {}) as Record<string, unknown>
    for (const [k, s] of Object.entries(d0)) {
      if (k in d1 && !deepEqual(stripDocs(s), stripDocs(d1[k])))
        return { path: [key, k], message: "a minor version may not change a shared definition" }
    }
  }
  if (
    !deepEqual(previous.additionalProperties ?? true, next.additionalProperties ?? true) ||
    !deepEqual(stripDocs(previous.anyOf), stripDocs(next.anyOf))
  ) {
    return { path: [], message: "a minor version may only add optional fields" }
  }
  return undefined
}

export const equalSchemas = (a: unknown, b: unknown): boolean => deepEqual(stripDocs(a), stripDocs(b))
