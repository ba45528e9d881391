/**
 * The CPU backend: plain TypeScript float32 kernels, the reference the WebGPU
 * kernels are checked against. Several instances act as several devices.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Backend } from "./Backend.js"
import { makeCpu } from "./internal/cpu.js"

/**
 * A CPU device named `cpu:<index>`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: { readonly index?: number } = {}): Effect.Effect<Backend> =>
  Effect.sync(() => makeCpu(`cpu:${options.index ?? 0}`))

/**
 * `count` CPU devices (`cpu:0` ... ).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMany = (count: number): Effect.Effect<ReadonlyArray<Backend>> =>
  Effect.sync(() => Array.from({ length: count }, (_, i) => makeCpu(`cpu:${i}`)))

/**
 * A CPU device without an Effect (for scripts and benchmarks).
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMake = (index = 0): Backend => makeCpu(`cpu:${index}`)
