import { FingerprintError } from "../StoreError.js"

/**
 * Canonical JSON: object keys sorted, no whitespace, `undefined` properties left
 * out. Refuses what JSON cannot represent faithfully (non-finite numbers, bigint,
 * functions, symbols, class instances, `undefined` in arrays) by throwing a
 * `FingerprintError` naming the path.
 */
export const canonicalJson = (value: unknown, path = "$"): string => {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value)
    case "boolean":
      return value ? "true" : "false"
    case "number":
      if (!Number.isFinite(value)) {
        throw new FingerprintError({ path, message: `${path} is ${value}: only finite numbers can be hashed` })
      }
      // -0 and 0 are the same JSON number
      return JSON.stringify(value === 0 ? 0 : value)
    case "object": {
      if (value === null) return "null"
      if (Array.isArray(value)) {
        return `[${value
          .map((v, i) => {
            if (v === undefined)
              throw new FingerprintError({ path: `${path}[${i}]`, message: `${path}[${i}] is undefined` })
            return canonicalJson(v, `${path}[${i}]`)
          })
          .join(",")}]`
      }
      const proto = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) {
        throw new FingerprintError({
          path,
          message: `${path} is a ${proto?.constructor?.name ?? "class instance"}: only plain objects, arrays and JSON primitives can be hashed`
        })
      }
      const keys = Object.keys(value).sort()
      const parts: Array<string> = []
      for (const key of keys) {
        const v = (value as Record<string, unknown>)[key]
        if (v === undefined) continue
        parts.push(`${JSON.stringify(key)}:${canonicalJson(v, `${path}.${key}`)}`)
      }
      return `{${parts.join(",")}}`
    }
    default:
      throw new FingerprintError({ path, message: `${path} is a ${typeof value}: it cannot be hashed` })
  }
}
