import { describe, expect, it } from "vitest"
import { uniqueName } from "../src/world.js"

describe("title names", () => {
  it("a repeated draw becomes a sequel, so no two titles share a name", () => {
    const seen = new Map<string, number>()
    const draws = ["Salt Hour", "Blue Coast", "Salt Hour", "Salt Hour", "Blue Coast"]
    const names = draws.map((d) => uniqueName(seen, d))
    expect(names).toEqual(["Salt Hour", "Blue Coast", "Salt Hour II", "Salt Hour III", "Blue Coast II"])
    expect(new Set(names).size).toBe(names.length)
  })
})
