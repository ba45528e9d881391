/**
 * Spatial regions in normalized image coordinates: `[0,1] x [0,1]`, origin top left.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

const Unit = Schema.Number.pipe(Schema.between(0, 1, { message: () => "must be within [0, 1]" }))

/**
 * An axis-aligned box: `x`, `y` of its top-left corner, `width` and `height`, all normalized.
 *
 * @since 0.1.0
 * @category models
 */
export const Box = Schema.TaggedStruct("Box", { x: Unit, y: Unit, width: Unit, height: Unit }).pipe(
  Schema.filter((b) => {
    if (b.x + b.width > 1 + 1e-9) return { path: ["width"], message: "x + width must be within [0, 1]" }
    if (b.y + b.height > 1 + 1e-9) return { path: ["height"], message: "y + height must be within [0, 1]" }
    return true
  }),
  Schema.annotations({ identifier: "Box" })
)

/**
 * A polygon of at least three normalized points `[x, y]`.
 *
 * @since 0.1.0
 * @category models
 */
export const Polygon = Schema.TaggedStruct("Polygon", {
  points: Schema.Array(Schema.Tuple(Unit, Unit)).pipe(Schema.minItems(3))
}).pipe(Schema.annotations({ identifier: "Polygon" }))

/**
 * A region: a box or a polygon.
 *
 * @since 0.1.0
 * @category models
 */
export const Region = Schema.Union(Box, Polygon).pipe(Schema.annotations({ identifier: "Region" }))

/**
 * @since 0.1.0
 * @category models
 */
export type Region = Schema.Schema.Type<typeof Region>

/**
 * A bounding box as corners `[x0, y0, x1, y1]`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Bounds {
  readonly x0: number
  readonly y0: number
  readonly x1: number
  readonly y1: number
}

/**
 * The bounding box of a region.
 *
 * @since 0.1.0
 * @category getters
 */
export const bounds = (region: Region): Bounds => {
  if (region._tag === "Box") {
    return { x0: region.x, y0: region.y, x1: region.x + region.width, y1: region.y + region.height }
  }
  let x0 = 1
  let y0 = 1
  let x1 = 0
  let y1 = 0
  for (const [x, y] of region.points) {
    x0 = Math.min(x0, x)
    y0 = Math.min(y0, y)
    x1 = Math.max(x1, x)
    y1 = Math.max(y1, y)
  }
  return { x0, y0, x1, y1 }
}

/**
 * A box from corners, for queries.
 *
 * @since 0.1.0
 * @category constructors
 */
export const box = (x: number, y: number, width: number, height: number): Region => ({
  _tag: "Box",
  x,
  y,
  width,
  height
})
