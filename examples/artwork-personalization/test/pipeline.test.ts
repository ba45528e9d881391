import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { StorageTesting } from "@org/storage/testing"
import { run, SEGMENTS } from "../src/pipeline.js"
import { write } from "../src/report.js"

for (const adapter of StorageTesting.adapters().filter((a) => a.name !== "sqlite-memory")) {
  if (adapter.skip) {
    describe.skip(`artwork personalization on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    console.warn(`[example] ${adapter.skip}`)
    continue
  }
  describe(`artwork personalization on ${adapter.name}`, () => {
    it.live(
      "runs end to end: catalog, memoized features, 2-device training, one annotation operation, report",
      () =>
        Effect.gen(function* () {
          const out = fs.mkdtempSync(path.join(os.tmpdir(), "artwork-demo-"))
          const titles = 3
          const perTitle = 3
          const summary = yield* run({
            out,
            storage: adapter.layer,
            titles,
            artworksPerTitle: perTitle,
            members: 40,
            impressionsPerMember: 8,
            epochs: 3,
            trailers: 1,
            devices: { count: 2, kind: "cpu" },
            log: () => undefined
          })
          const artworks = titles * perTitle
          expect(summary.artworks).toHaveLength(artworks)
          expect(summary.changes).toBe(artworks + 1) // posters + one trailer
          // features are computed once: the second pass only reads
          expect(summary.features.first.computations).toBe(artworks)
          expect(summary.features.second).toMatchObject({ computations: 0, hits: artworks })
          expect(summary.training.epochs).toHaveLength(3)
          expect(summary.training.epochs.every((e) => Number.isFinite(e.loss))).toBe(true)
          expect(summary.picks).toHaveLength(SEGMENTS.length * titles)
          expect(summary.operation.written).toBe(SEGMENTS.length * artworks)
          expect(summary.operation.queried).toBe(titles) // rank 1 of every title for one segment
          expect(summary.similar[0]!.hits.length).toBeGreaterThan(0)
          expect(summary.shots.length).toBeGreaterThanOrEqual(2) // the trailer has hard cuts
          const report = yield* Effect.promise(() => write(summary, out))
          const html = fs.readFileSync(report, "utf8")
          expect(html.match(/<svg/g)?.length).toBeGreaterThanOrEqual(3)
          expect(html).toContain(`src="media/${summary.picks[0]!.artwork}.jpg"`)
          fs.rmSync(out, { recursive: true, force: true })
        }),
      120_000
    )
  })
}
