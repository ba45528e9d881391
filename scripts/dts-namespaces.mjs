// Repairs the namespaces of the bundled declaration files (dist/*.d.ts, dist/*.d.cts) that tsup's dts bundler
// (its copy of rollup-plugin-dts) writes for `export * as X from "./X.js"`.
//
// The bundler keeps one kind per name: a module exporting a value and a type of one name (the usual
// `export const ContentHash = Schema...` + `export type ContentHash = ...`) comes out of the namespace as the type
// only (`type ContentHash$1_ContentHash = ContentHash`, exported as `type ...`), or as the value only when the type
// was declared first, so `import { ContentHash } from "@org/media-types"` had no `ContentHash.ContentHash` schema
// while `@org/media-types/ContentHash` had it. This adds the missing half next to the other and drops the `type`
// modifier from the namespace's export, so the namespace carries both, as TypeScript's own output does.
//
//   node scripts/dts-namespaces.mjs [dist folder]   (default ./dist; prints what it repaired)
import * as fs from "node:fs"
import * as path from "node:path"

const escape = (s) => s.replace(/[$]/g, "\\$")

/** The repaired text of one declaration file and the names repaired. */
export const repair = (text) => {
  const repaired = []
  const hasValue = (name) =>
    new RegExp(`^(?:export )?declare (?:const|let|var|function) ${escape(name)}\\b`, "m").test(text)
  const hasType = (name) =>
    new RegExp(`^(?:export )?(?:declare )?(?:type|interface) ${escape(name)}\\b(?!<)`, "m").test(text)
  let out = text
  // a type-only alias of a name that also has a value: add the value
  out = out.replace(/^type ([\w$]+)_(\w+) = \2;$/gm, (line, ns, name) => {
    if (!hasValue(name)) return line
    repaired.push(`${ns}.${name}`)
    return `${line}\ndeclare const ${ns}_${name}: typeof ${name};`
  })
  // a value-only alias of a name that also has a (non-generic) type: add the type
  out = out.replace(/^declare const ([\w$]+)_(\w+): typeof \2;$/gm, (line, ns, name) => {
    if (!hasType(name) || out.includes(`type ${ns}_${name} = ${name};`)) return line
    repaired.push(`${ns}.${name}`)
    return `type ${ns}_${name} = ${name};\n${line}`
  })
  for (const entry of repaired) {
    const [ns, name] = entry.split(".")
    out = out.replace(new RegExp(`\\btype (${escape(ns)}_${name} as ${name})\\b`, "g"), "$1")
  }
  return { text: out, repaired }
}

/** Repairs every declaration file under `dist`; returns `file: names` lines. */
export const repairDist = (dist) => {
  const report = []
  for (const file of fs.readdirSync(dist)) {
    if (!/\.d\.c?ts$/.test(file)) continue
    const full = path.join(dist, file)
    const { text, repaired } = repair(fs.readFileSync(full, "utf8"))
    if (repaired.length === 0) continue
    fs.writeFileSync(full, text)
    report.push(`${file}: ${repaired.join(", ")}`)
  }
  return report
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dist = path.resolve(process.argv[2] ?? "dist")
  for (const line of repairDist(dist)) console.error(`dts namespaces: ${line}`)
}
