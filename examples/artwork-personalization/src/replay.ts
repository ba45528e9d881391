/**
 * Off-policy evaluation by replay (Li, Chu, Langford, Wang 2011): keep the logged impressions where the policy
 * would have shown the artwork that the uniformly random logging policy showed; the take rate over those estimates
 * the policy's take rate without bias. Titles have different numbers of candidates, so each kept impression is
 * weighted by 1 / propensity (self-normalized; with equal candidate counts this is the plain replay average).
 * The 95% interval is a percentile bootstrap over the kept impressions.
 */
import type { Impression } from "./world.js"
import { rng } from "./random.js"

export interface Estimate {
  readonly takeRate: number
  readonly low: number
  readonly high: number
  /** Impressions kept (the policy's choice equals the logged one). */
  readonly matched: number
  /** Impressions in the log. */
  readonly events: number
}

export type Policy = (impression: Impression) => number

const weighted = (rewards: Float64Array, weights: Float64Array, pick: (i: number) => number, n: number) => {
  let num = 0
  let den = 0
  for (let j = 0; j < n; j++) {
    const i = pick(j)
    num += rewards[i]! * weights[i]!
    den += weights[i]!
  }
  return den === 0 ? 0 : num / den
}

/** The replay estimate of a policy's take rate on a log, with a bootstrap 95% interval. */
export const replay = (log: ReadonlyArray<Impression>, policy: Policy, seed: number, resamples = 400): Estimate => {
  const rewards: Array<number> = []
  const weights: Array<number> = []
  for (const e of log) {
    if (policy(e) !== e.artwork) continue
    rewards.push(e.played ? 1 : 0)
    weights.push(1 / e.propensity)
  }
  const n = rewards.length
  const r = Float64Array.from(rewards)
  const w = Float64Array.from(weights)
  const takeRate = weighted(r, w, (i) => i, n)
  if (n === 0) return { takeRate: 0, low: 0, high: 1, matched: 0, events: log.length }
  const random = rng(seed)
  const samples: Array<number> = []
  for (let b = 0; b < resamples; b++) samples.push(weighted(r, w, () => Math.floor(random() * n), n))
  samples.sort((a, b) => a - b)
  return {
    takeRate,
    low: samples[Math.floor(0.025 * resamples)]!,
    high: samples[Math.min(resamples - 1, Math.ceil(0.975 * resamples) - 1)]!,
    matched: n,
    events: log.length
  }
}

/** k-means (Lloyd, seeded k-means++ start) over rows of a matrix: the cluster of each row and the centroids. */
export const kmeans = (
  rows: ReadonlyArray<Float32Array>,
  k: number,
  seed: number,
  iterations = 20
): { readonly assignment: Int32Array; readonly centroids: ReadonlyArray<Float32Array> } => {
  const random = rng(seed)
  const dim = rows[0]?.length ?? 0
  const dist = (a: Float32Array, b: Float32Array) => {
    let s = 0
    for (let i = 0; i < dim; i++) s += (a[i]! - b[i]!) ** 2
    return s
  }
  const centroids: Array<Float32Array> = [Float32Array.from(rows[Math.floor(random() * rows.length)]!)]
  while (centroids.length < Math.min(k, rows.length)) {
    const d = rows.map((r) => Math.min(...centroids.map((c) => dist(r, c))))
    const total = d.reduce((a, b) => a + b, 0)
    let x = random() * total
    let pick = 0
    while (pick < rows.length - 1 && x > d[pick]!) x -= d[pick++]!
    centroids.push(Float32Array.from(rows[pick]!))
  }
  const assignment = new Int32Array(rows.length)
  for (let it = 0; it < iterations; it++) {
    rows.forEach((r, i) => {
      let best = 0
      let bestD = Infinity
      centroids.forEach((c, j) => {
        const dd = dist(r, c)
        if (dd < bestD) {
          bestD = dd
          best = j
        }
      })
      assignment[i] = best
    })
    const sums = centroids.map(() => new Float64Array(dim))
    const counts = new Array<number>(centroids.length).fill(0)
    rows.forEach((r, i) => {
      const c = assignment[i]!
      counts[c]!++
      for (let d = 0; d < dim; d++) sums[c]![d]! += r[d]!
    })
    centroids.forEach((c, j) => {
      if (counts[j]! > 0) for (let d = 0; d < dim; d++) c[d] = sums[j]![d]! / counts[j]!
    })
  }
  return { assignment, centroids }
}
