/**
 * The demo's HTML report: one file in the data folder, images beside it (the generated media, shot frames), charts
 * drawn by Vega-Lite on Node and inlined as SVG.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as vega from "vega"
import * as vl from "vega-lite"
import type { TopLevelSpec } from "vega-lite"
import { POLICIES, type Summary } from "./pipeline.js"

const svg = async (spec: TopLevelSpec): Promise<string> => {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" })
  const out = await view.toSVG()
  view.finalize()
  return out
}

const escape = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!)

const pct = (x: number) => `${(x * 100).toFixed(1)}%`

/** The replay table as plain text lines (the terminal prints it). */
export const replayTable = (summary: Summary): ReadonlyArray<string> => {
  const lines = [`${"policy".padEnd(14)}${"warm titles".padEnd(30)}cold-start titles`]
  for (const p of POLICIES) {
    const cell = (e: Summary["replay"]["warm"][typeof p]) =>
      `${pct(e.takeRate)} [${pct(e.low)}, ${pct(e.high)}] n=${e.matched}`.padEnd(30)
    lines.push(`${p.padEnd(14)}${cell(summary.replay.warm[p])}${cell(summary.replay.cold[p]).trimEnd()}`)
  }
  lines.push(
    `${"oracle".padEnd(14)}${pct(summary.replay.oracle.warm).padEnd(30)}${pct(summary.replay.oracle.cold)}  (hidden play model, expected)`
  )
  return lines
}

export const write = async (summary: Summary, data: string): Promise<string> => {
  const loss = await svg({
    title: "Training loss (binary cross-entropy) per epoch",
    width: 320,
    height: 200,
    data: { values: summary.training.epochs.map((e) => ({ ...e })) },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "epoch", type: "quantitative", title: "epoch", axis: { tickMinStep: 1 } },
      y: { field: "loss", type: "quantitative", scale: { zero: false }, title: "loss" }
    }
  })
  const replayChart = (set: "warm" | "cold") =>
    svg({
      title: `Replay take rate, ${set === "warm" ? "warm" : "cold-start"} titles (95% interval)`,
      width: 260,
      height: 200,
      data: {
        values: POLICIES.map((p) => ({ policy: p, ...summary.replay[set][p] }))
      },
      layer: [
        {
          mark: "bar",
          encoding: {
            x: { field: "policy", type: "nominal", sort: null, title: null },
            y: { field: "takeRate", type: "quantitative", axis: { format: "%" }, title: "take rate" },
            color: { field: "policy", type: "nominal", legend: null, sort: null }
          }
        },
        {
          mark: { type: "rule", strokeWidth: 2 },
          encoding: {
            x: { field: "policy", type: "nominal", sort: null },
            y: { field: "low", type: "quantitative" },
            y2: { field: "high" }
          }
        }
      ]
    })
  const warm = await replayChart("warm")
  const cold = await replayChart("cold")
  const store = await svg({
    title: "Feature store, this run: computed vs reused",
    width: 300,
    height: 200,
    data: {
      values: Object.entries(summary.features).flatMap(([feature, c]) => [
        { feature, what: "computed", n: c.computed },
        { feature, what: "reused", n: c.reused }
      ])
    },
    mark: "bar",
    encoding: {
      y: { field: "feature", type: "nominal", title: null, sort: null },
      x: { field: "n", type: "quantitative", title: "values" },
      color: { field: "what", type: "nominal", title: null }
    }
  })

  const rel = (file: string) => escape(path.relative(data, file).split(path.sep).join("/"))
  const img = (id: string, title: string, cls = "") =>
    `<img class="${cls}" src="${rel(summary.artworkFiles[id]!)}" title="${escape(title)}" alt="${escape(id)}" width="60" height="90">`
  const titleOf = new Map(summary.titles.map((t) => [t.id, t]))
  const pickTitles = [...new Set(summary.serving.picks.map((p) => p.title))]
  const clusters = [...new Set(summary.serving.picks.map((p) => p.cluster))].sort((a, b) => a - b)
  const picks = `<table class="grid"><tr><th>title</th>${clusters
    .map(
      (c) =>
        `<th>cluster ${c}<br><small>${summary.serving.picks.find((p) => p.cluster === c)?.members ?? 0} members</small></th>`
    )
    .join("")}<th>candidates</th></tr>${pickTitles
    .map((t) => {
      const title = titleOf.get(t)!
      return `<tr><th>${escape(title.name)}<br><small>${escape(title.genre)}${title.cold ? ", cold start" : ""}</small></th>${clusters
        .map((c) => {
          const p = summary.serving.picks.find((x) => x.title === t && x.cluster === c)
          return `<td>${p ? img(p.artwork, `${p.artwork}: score ${p.score.toFixed(2)}`) : ""}</td>`
        })
        .join("")}<td class="small">${title.artworks.map((a) => img(a, a, "small")).join("")}</td></tr>`
    })
    .join("\n")}</table>`
  const similar = summary.serving.similar
    .map(
      (
        s
      ) => `<tr><td>${img(s.query, s.query)}</td><td>${s.any.map((h) => img(h.artwork, `${h.artwork} (cosine distance ${h.distance.toFixed(3)})`)).join("")}</td>
<td>${s.sameGenre.map((h) => img(h.artwork, `${h.artwork} (cosine distance ${h.distance.toFixed(3)})`)).join("")}</td></tr>`
    )
    .join("\n")
  const cuts = summary.serving.matchCuts
    .map(
      (
        m
      ) => `<tr><td><img src="${rel(m.left.image)}" alt="${escape(m.left.video)} shot ${m.left.index}" width="96"><br><small>${escape(m.left.video)} #${m.left.index} at ${(m.left.startNs / 1e9).toFixed(2)} s</small></td>
<td><img src="${rel(m.right.image)}" alt="${escape(m.right.video)} shot ${m.right.index}" width="96"><br><small>${escape(m.right.video)} #${m.right.index} at ${(m.right.startNs / 1e9).toFixed(2)} s</small></td><td>${Math.max(0, m.distance).toFixed(4)}</td></tr>`
    )
    .join("\n")
  const features = Object.entries(summary.features)
    .map(
      ([f, c]) =>
        `<tr><td>${escape(f)}</td><td>${c.entities}</td><td>${c.computed}</td><td>${c.reused}</td><td>${c.failed}</td></tr>`
    )
    .join("")
  const replayRows = POLICIES.map((p) => {
    const cell = (e: Summary["replay"]["warm"][typeof p]) =>
      `<td>${pct(e.takeRate)}</td><td>[${pct(e.low)}, ${pct(e.high)}]</td><td>${e.matched}</td>`
    return `<tr><td>${p}</td>${cell(summary.replay.warm[p])}${cell(summary.replay.cold[p])}</tr>`
  }).join("")
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Artwork personalization</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px} table{border-collapse:collapse} td,th{padding:4px 8px;vertical-align:top;text-align:left}
.kv td:first-child{color:#666} .data td,.data th{border-bottom:1px solid #ddd} img{border-radius:3px;margin:1px} img.small{width:24px;height:36px;opacity:.8}
.plots{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start} small{color:#666} li.no{color:#b00020}
</style></head><body>
<h1>Artwork personalization</h1>
<p>Which artwork should a member see for a title? A world of ${summary.titles.length} titles and ${summary.log.members} members with hidden
tastes was generated from seed ${summary.seed}. Jasper registered every asset; an Amber trigger on the change feed materialized the feature mesh;
a two-tower ranker trained on the exploration log; Marken serves its scores; the replay evaluation below uses held-out impressions only.</p>
<table class="kv">
<tr><td>storage</td><td>${escape(summary.storage)}</td></tr>
<tr><td>training devices</td><td>${escape(summary.devices)}</td></tr>
<tr><td>catalog</td><td>${summary.catalog.registered} assets; ${summary.catalog.changes} new changes this run, ${summary.catalog.processed} processed by the trigger</td></tr>
<tr><td>exploration log</td><td>${summary.log.train} train impressions (${pct(summary.log.trainPlayRate)} played), ${summary.log.heldOut} held out (later in time), ${summary.log.cold} on ${summary.titles.filter((t) => t.cold).length} cold-start titles</td></tr>
<tr><td>training</td><td>${summary.training.rows} rows, ${summary.training.steps} steps in ${(summary.training.ms / 1000).toFixed(1)} s</td></tr>
<tr><td>stage timings</td><td>${Object.entries(summary.timings)
    .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
    .join(", ")}</td></tr>
</table>
<h2>Replay evaluation</h2>
<p>Li et al. (2011): an impression counts for a policy when the policy would have shown the artwork the uniformly random
logger showed (weighted by 1 / propensity); 95% percentile-bootstrap intervals. Oracle: the hidden play model's best artwork
(${pct(summary.replay.oracle.warm)} warm, ${pct(summary.replay.oracle.cold)} cold), a ceiling.</p>
<table class="data"><tr><th>policy</th><th>warm take rate</th><th>95% interval</th><th>matched</th><th>cold take rate</th><th>95% interval</th><th>matched</th></tr>${replayRows}</table>
<ul>${summary.replay.findings.map((f) => `<li class="${/NOT|not a clear/.test(f) ? "no" : "yes"}">${escape(f)}</li>`).join("")}</ul>
<div class="plots">${warm}${cold}${loss}</div>
<h2>The artwork each member cluster sees (served by Marken)</h2>
<p>Member clusters: k-means over the members' profiles. The pick is Marken's rank-1 annotation of the ranker's scoring operation
(${summary.serving.scores} scores in operation ${escape(summary.serving.operation)}).</p>
${picks}
<h2>Feature store</h2>
<table class="data"><tr><th>feature</th><th>entities</th><th>computed this run</th><th>reused</th><th>failed</th></tr>${features}</table>
<div class="plots">${store}</div>
<h2>Similar artworks (HNSW kNN in Marken)</h2>
<table class="data"><tr><th>artwork</th><th>nearest, any genre</th><th>nearest, same genre</th></tr>${similar}</table>
<h2>Match cuts: the most similar shots across trailers</h2>
<p>From Marken's vector pairs over the shots' keyframe embeddings; ${summary.serving.duplicates} pairs of identical footage
(cosine distance under 0.001) are left out, and each shot appears once.</p>
<table class="data"><tr><th>shot</th><th>matching shot</th><th>cosine distance</th></tr>${cuts}</table>
</body></html>
`
  const file = path.join(data, "report.html")
  fs.writeFileSync(file, html)
  return file
}
