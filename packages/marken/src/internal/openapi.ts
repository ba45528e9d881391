/**
 * The last pass over the generated OpenAPI document, so strict validators and code
 * generators read it as meant: the platform's decode error (never sent: Marken
 * answers `InvalidRequestError`) is dropped, an untyped schema is the one `JsonValue`
 * component, and unions of `_tag`ged components carry a discriminator.
 */

type Json = { [key: string]: any }

const REF = "#/components/schemas/"
const dropped = new Set(["HttpApiDecodeError", "Issue", "PropertyKey"])

const walk = (node: unknown, visit: (obj: Json) => Json): unknown => {
  if (Array.isArray(node)) return node.map((n) => walk(n, visit))
  if (typeof node !== "object" || node === null) return node
  const out: Json = {}
  for (const [k, v] of Object.entries(node)) out[k] = walk(v, visit)
  return visit(out)
}

const tagOf = (schema: Json | undefined): string | undefined => {
  const tag = schema?.properties?._tag
  if (!tag || !(schema!.required ?? []).includes("_tag")) return undefined
  if (typeof tag.const === "string") return tag.const
  return Array.isArray(tag.enum) && tag.enum.length === 1 && typeof tag.enum[0] === "string" ? tag.enum[0] : undefined
}

export const finishDocument = (spec: Json): Json => {
  const schemas: Json = { ...spec.components?.schemas }
  for (const name of dropped) delete schemas[name]
  const { $id: _id, title: _title, ...json } = (schemas.JsonValue ?? {}) as Json
  const isDropped = (s: unknown) =>
    typeof (s as Json)?.$ref === "string" && dropped.has((s as Json).$ref.slice(REF.length))
  const visit = (obj: Json): Json => {
    if (obj.$id === "/schemas/unknown") {
      const { $id: _, ...rest } = obj
      return { ...rest, $ref: `${REF}JsonValue` }
    }
    for (const key of ["anyOf", "oneOf"] as const) {
      if (!Array.isArray(obj[key])) continue
      const members = (obj[key] as Array<unknown>).filter((m) => !isDropped(m))
      if (members.length === 1 && Object.keys(obj).length === 1) return members[0] as Json
      obj = { ...obj, [key]: members }
      const refs = members.map((m) => (m as Json)?.$ref as string | undefined)
      if (members.length > 1 && refs.every((r) => typeof r === "string" && r.startsWith(REF))) {
        const mapping: Record<string, string> = {}
        for (const r of refs) {
          const tag = tagOf(schemas[r!.slice(REF.length)])
          if (tag === undefined || mapping[tag] !== undefined) return obj
          mapping[tag] = r!
        }
        obj = { ...obj, discriminator: { propertyName: "_tag", mapping } }
      }
    }
    return obj
  }
  const paths = walk(spec.paths, visit)
  const components = walk({ ...spec.components, schemas }, visit) as Json
  components.schemas.JsonValue = { description: "Any JSON value", ...json }
  return { ...spec, paths, components }
}
