// Every TypeScript or JavaScript block in a README is a program kept in a file: the line before the block names it,
//
//   <!-- example: examples/quickstart.ts -->
//   ```ts
//   ...the file's content, verbatim...
//   ```
//
// (the path is relative to the README's folder). This script checks that every such block equals its file, and that
// no TypeScript/JavaScript block is left without a file; `npm run test:pack` type-checks and runs the files against
// the installed tarballs.
//
//   node scripts/readme-examples.mjs           check (exit 1 on drift or an untested block)
//   node scripts/readme-examples.mjs --write   copy each file into its README block
//   node scripts/readme-examples.mjs --list    print the examples as JSON
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

const CODE = new Set(["ts", "typescript", "js", "javascript", "mjs", "cjs", "tsx"])
const MARKER = /^<!--\s*example:\s*(\S+)\s*-->\s*$/

/** The READMEs that may hold programs: the root's, every package's and every example's. */
export const readmes = (root) =>
  [
    "README.md",
    ...["packages", "examples"].flatMap((dir) =>
      fs.existsSync(path.join(root, dir))
        ? fs
            .readdirSync(path.join(root, dir))
            .sort()
            .map((d) => path.join(dir, d, "README.md"))
        : []
    )
  ].filter((f) => fs.existsSync(path.join(root, f)))

/** The code blocks of a README: language, the file its marker names (if any), its content and its line range. */
export const blocks = (text) => {
  const lines = text.split("\n")
  const out = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i])
    if (!open) continue
    const fence = open[2]
    let j = i + 1
    while (j < lines.length && !lines[j].trimStart().startsWith(fence)) j++
    let k = i - 1
    while (k >= 0 && lines[k].trim() === "") k--
    const marker = k >= 0 ? MARKER.exec(lines[k].trim()) : null
    out.push({
      lang: open[3].toLowerCase(),
      file: marker?.[1],
      start: i,
      end: j,
      content: lines.slice(i + 1, j).join("\n")
    })
    i = j
  }
  return out
}

/** Every README program: `{ readme, file (absolute), rel (from the root), pkg }`, and the problems found. */
export const collect = (root, { write = false } = {}) => {
  const examples = []
  const problems = []
  for (const readme of readmes(root)) {
    const full = path.join(root, readme)
    const text = fs.readFileSync(full, "utf8")
    const lines = text.split("\n")
    let changed = false
    // last block first, so that line numbers of earlier blocks stay valid while writing
    for (const block of blocks(text).reverse()) {
      if (!CODE.has(block.lang)) continue
      const where = `${readme}:${block.start + 1}`
      if (!block.file) {
        problems.push(`${where}: a \`\`\`${block.lang} block without an <!-- example: path --> line before it`)
        continue
      }
      const file = path.resolve(path.dirname(full), block.file)
      const rel = path.relative(root, file)
      if (!fs.existsSync(file)) {
        problems.push(`${where}: ${rel} does not exist`)
        continue
      }
      const source = fs.readFileSync(file, "utf8").replace(/\n+$/, "")
      examples.unshift({
        readme,
        file,
        rel,
        pkg: path.dirname(readme) === "." ? "root" : path.basename(path.dirname(readme))
      })
      if (source === block.content) continue
      if (write) {
        lines.splice(block.start + 1, block.end - block.start - 1, ...source.split("\n"))
        changed = true
      } else {
        problems.push(`${where}: the block differs from ${rel} (run: node scripts/readme-examples.mjs --write)`)
      }
    }
    if (changed) {
      fs.writeFileSync(full, lines.join("\n"))
      console.log(`wrote ${readme}`)
    }
  }
  return { examples, problems }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const root = path.resolve(import.meta.dirname, "..")
  const { examples, problems } = collect(root, { write: process.argv.includes("--write") })
  if (process.argv.includes("--list")) console.log(JSON.stringify(examples, null, 2))
  if (problems.length > 0) {
    console.error(`README programs: ${problems.length} problem(s)\n${problems.map((p) => `  ${p}`).join("\n")}`)
    process.exit(1)
  }
  console.log(`README programs: ${examples.length} blocks match their files`)
}
