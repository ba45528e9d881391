// `@org/marken/client` loads no native module and no Node server (issue 11).
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "../../..")

describe("@org/marken/client", () => {
  it("exports the API, client, errors and models without loading hnswlib-node or the Node server", () => {
    // a fresh Node process (sources through tsx): the modules loaded after the client, then after the full entry
    const script = `
      import { createRequire } from "node:module"
      const require = createRequire(import.meta.url)
      const client = await import("@org/marken/client")
      const afterClient = Object.keys(require.cache)
      await import("@org/marken")
      console.log(JSON.stringify({ exports: Object.keys(client), afterClient, afterFull: Object.keys(require.cache) }))
    `
    const out = execFileSync(
      process.execPath,
      ["--conditions=@org/source", "--import", "tsx", "--input-type=module", "-e", script],
      { cwd: root, encoding: "utf8" }
    )
    const { afterClient, afterFull, exports } = JSON.parse(out.trim().split("\n").pop()!) as Record<
      string,
      Array<string>
    >
    for (const name of ["MarkenApi", "MarkenClient", "MarkenError", "Annotation", "Query", "Operation"]) {
      expect(exports).toContain(name)
    }
    expect(exports).not.toContain("Annotations")
    expect(afterClient!.filter((m) => m.includes("hnswlib") || m.includes("platform-node"))).toEqual([])
    // the check can fail: the full entry does load hnswlib-node
    expect(afterFull!.filter((m) => m.includes("hnswlib")).length).toBeGreaterThan(0)
  }, 60_000)
})
