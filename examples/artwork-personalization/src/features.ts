/**
 * The artwork features of the pipeline: a 16-d colour descriptor computed from a
 * decoded, downsized image (mean and spread of R, G, B, brightness, saturation and
 * an 8-bin hue histogram). Cheap on purpose: the point is the plumbing around it.
 */
import type { Image } from "@org/jasper"

export const DIMENSION = 16

const hueOf = (r: number, g: number, b: number): { h: number; s: number; v: number } => {
  const max = Math.max(r, g, b)
  const min = Math.min(r, g, b)
  const d = max - min
  let h = 0
  if (d > 0) {
    if (max === r) h = ((g - b) / d + 6) % 6
    else if (max === g) h = (b - r) / d + 2
    else h = (r - g) / d + 4
  }
  return { h: h / 6, s: max === 0 ? 0 : d / max, v: max }
}

/** The colour descriptor of an HWC float32 RGB tensor with values in [0, 1]. */
export const colorDescriptor = (tensor: Image.Tensor): Float32Array => {
  const data = tensor.data as Float32Array
  const pixels = tensor.width * tensor.height
  const mean = [0, 0, 0]
  const sq = [0, 0, 0]
  let brightness = 0
  let saturation = 0
  const hist = new Array<number>(8).fill(0)
  for (let p = 0; p < pixels; p++) {
    const r = data[p * 3]!
    const g = data[p * 3 + 1]!
    const b = data[p * 3 + 2]!
    mean[0]! += r
    mean[1]! += g
    mean[2]! += b
    sq[0]! += r * r
    sq[1]! += g * g
    sq[2]! += b * b
    const { h, s, v } = hueOf(r, g, b)
    brightness += v
    saturation += s
    hist[Math.min(7, Math.floor(h * 8))]! += s // weight hue by saturation: grey has no hue
  }
  const out = new Float32Array(DIMENSION)
  for (let c = 0; c < 3; c++) {
    const m = mean[c]! / pixels
    out[c] = m
    out[3 + c] = Math.sqrt(Math.max(0, sq[c]! / pixels - m * m))
  }
  out[6] = brightness / pixels
  out[7] = saturation / pixels
  const total = hist.reduce((a, b) => a + b, 0) || 1
  for (let i = 0; i < 8; i++) out[8 + i] = hist[i]! / total
  return out
}
