/** `payload` + `["a", 0, "b"]` -> `payload.a.0.b`. */
export const formatPath = (prefix: string, path: ReadonlyArray<PropertyKey>): string =>
  [prefix, ...path.map(String)].filter((s) => s.length > 0).join(".")
