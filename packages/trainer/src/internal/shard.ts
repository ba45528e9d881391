import type { Batch } from "../Dataset.js"

/** Row counts of `size` rows over `n` devices: contiguous, the first ones one row larger when uneven. */
export const shardSizes = (size: number, n: number): ReadonlyArray<number> =>
  Array.from({ length: n }, (_, k) => Math.floor(size / n) + (k < size % n ? 1 : 0))

/** The first row of each shard. */
export const shardStarts = (sizes: ReadonlyArray<number>): ReadonlyArray<number> => {
  const starts: Array<number> = []
  let at = 0
  for (const s of sizes) {
    starts.push(at)
    at += s
  }
  return starts
}

/**
 * An order-sensitive 32-bit FNV-1a digest of a batch's values: the inputs in name order, then the target, each
 * row by row. Two batches with the same rows in the same order have the same digest.
 */
export const checksum = (batch: Batch): number => {
  let h = 0x811c9dc5
  const mix = (data: Float32Array) => {
    const words = new Uint32Array(data.buffer, data.byteOffset, data.length)
    for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i]!, 0x01000193)
  }
  for (const name of Object.keys(batch.inputs).sort()) mix(batch.inputs[name]!)
  mix(batch.target)
  return h >>> 0
}
