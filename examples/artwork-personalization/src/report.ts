/** The demo's HTML report: thumbnails of the chosen artworks and plots rendered to SVG by Vega-Lite. */
import * as fs from "node:fs"
import * as path from "node:path"
import * as vega from "vega"
import * as vl from "vega-lite"
import type { TopLevelSpec } from "vega-lite"
import { SEGMENTS, type Summary } from "./pipeline.js"

const svg = async (spec: TopLevelSpec): Promise<string> => {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" })
  const out = await view.toSVG()
  view.finalize()
  return out
}

const escape = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!)

export const write = async (summary: Summary, out: string): Promise<string> => {
  const loss = await svg({
    title: "Training loss (binary cross-entropy) per epoch",
    width: 360,
    height: 200,
    data: { values: summary.training.epochs.map((e) => ({ ...e })) },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "epoch", type: "quantitative", title: "epoch" },
      y: { field: "loss", type: "quantitative", scale: { zero: false }, title: "loss" }
    }
  })
  const cache = await svg({
    title: "Feature store: computed vs read from cache",
    width: 200,
    height: 200,
    data: {
      values: [
        { pass: "1st pass", kind: "computed", n: summary.features.first.computations },
        { pass: "1st pass", kind: "cache hit", n: summary.features.first.hits },
        { pass: "2nd pass", kind: "computed", n: summary.features.second.computations },
        { pass: "2nd pass", kind: "cache hit", n: summary.features.second.hits }
      ]
    },
    mark: "bar",
    encoding: {
      x: { field: "pass", type: "nominal", title: null },
      xOffset: { field: "kind" },
      y: { field: "n", type: "quantitative", title: "artworks" },
      color: { field: "kind", type: "nominal", title: null }
    }
  })
  const take = await svg({
    title: "Expected take rate of the shown artwork",
    width: 200,
    height: 200,
    data: {
      values: [
        { policy: "random artwork", rate: summary.evaluation.randomTakeRate },
        { policy: "personalized", rate: summary.evaluation.takeRate }
      ]
    },
    mark: "bar",
    encoding: {
      x: { field: "policy", type: "nominal", title: null, sort: null },
      y: { field: "rate", type: "quantitative", axis: { format: "%" }, title: "take rate" },
      color: { field: "policy", type: "nominal", legend: null }
    }
  })
  const shots =
    summary.shots.length === 0
      ? ""
      : await svg({
          title: "Shots detected in the trailers (temporal annotations)",
          width: 420,
          height: 30 * new Set(summary.shots.map((s) => s.title)).size,
          data: { values: summary.shots.map((s, i) => ({ ...s, shot: i })) },
          mark: { type: "bar", stroke: "white" },
          encoding: {
            y: { field: "title", type: "nominal", title: null },
            x: { field: "startMs", type: "quantitative", title: "ms" },
            x2: { field: "endMs" },
            color: { field: "shot", type: "nominal", legend: null }
          }
        })

  const img = (file: string, title: string, cls = "") =>
    `<img class="${cls}" src="${escape(path.relative(out, file))}" title="${escape(title)}" width="80" height="120">`
  const byId = new Map(summary.artworks.map((a) => [a.id, a]))
  const grid = SEGMENTS.map((segment) => {
    const cells = summary.titles
      .map((t) => {
        const pick = summary.picks.find((p) => p.segment === segment.id && p.title === t.id)!
        const others = summary.artworks.filter((a) => a.title === t.id && a.id !== pick.artwork)
        return `<td>${img(byId.get(pick.artwork)!.file, `${pick.artwork} score ${pick.score.toFixed(2)}`, pick.artwork === pick.best ? "pick best" : "pick")}
          <div class="others">${others.map((o) => img(o.file, o.id, "small")).join("")}</div></td>`
      })
      .join("")
    return `<tr><th>${escape(segment.label)}</th>${cells}</tr>`
  }).join("\n")
  const similar = summary.similar
    .map(
      (s) =>
        `<p>${img(byId.get(s.query)!.file, s.query)} &rarr; ${s.hits.map((h) => img(byId.get(h.id)?.file ?? "", `${h.id} (cosine distance ${h.distance.toFixed(3)})`)).join(" ")}</p>`
    )
    .join("")
  const e = summary.evaluation
  const html = `<!doctype html>
<html lang="en"><meta charset="utf-8"><title>Artwork personalization</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222} table{border-collapse:collapse} td,th{padding:6px;vertical-align:top;text-align:left}
img{border-radius:4px;margin:1px} img.pick{outline:3px solid #999} img.best{outline:3px solid #2a9d4b} img.small{width:26px;height:39px;opacity:.7}
.plots{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start} .kv td:first-child{color:#666}
</style>
<h1>Artwork personalization</h1>
<p>Which artwork should each member segment see for each title? Artworks were registered in the Jasper catalog,
described by a colour embedding memoized in the Amber feature store, a two-tower ranker was trained on plays,
and its scores were written to Marken as one annotation operation.</p>
<table class="kv">
<tr><td>storage</td><td>${escape(summary.storage)}</td></tr>
<tr><td>training devices</td><td>${escape(summary.devices)}</td></tr>
<tr><td>catalog</td><td>${summary.titles.length} titles, ${summary.artworks.length} artworks, change feed at ${summary.changes}</td></tr>
<tr><td>training data</td><td>${summary.training.samples} impressions, ${summary.training.positives} plays</td></tr>
<tr><td>favourite artwork found</td><td>${(e.accuracy * 100).toFixed(0)}% of (segment, title) pairs (random: ${(e.randomAccuracy * 100).toFixed(0)}%)</td></tr>
<tr><td>expected take rate</td><td>${(e.takeRate * 100).toFixed(1)}% personalized vs ${(e.randomTakeRate * 100).toFixed(1)}% random</td></tr>
<tr><td>annotation operation</td><td>${escape(summary.operation.id)}: ${summary.operation.written} scores written; ${summary.operation.queried} top picks for night owls queried back</td></tr>
<tr><td>shots overlapping the first second</td><td>${summary.shotsInFirstSecond}</td></tr>
</table>
<div class="plots">${loss}${cache}${take}${shots}</div>
<h2>The artwork each segment sees</h2>
<p>Large: the ranker's pick (green outline when it is the segment's true favourite); small: the title's other artworks.</p>
<table><tr><th></th>${summary.titles.map((t) => `<th>${escape(t.name)}</th>`).join("")}</tr>
${grid}</table>
<h2>Similar artworks (HNSW vector search, filtered to one segment)</h2>
${similar}
</html>
`
  const file = path.join(out, "report.html")
  fs.writeFileSync(file, html)
  return file
}
