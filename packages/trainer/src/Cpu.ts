/**
 * The CPU backend: plain TypeScript float32 kernels, the reference the WebGPU
 * kernels are checked against. Several instances act as several devices; by default
 * the trainer runs each one's replica in a worker thread of its own, so devices train
 * in parallel on several cores.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Backend } from "./Backend.js"
import { makeCpu } from "./internal/cpu.js"
import { markThreaded } from "./internal/threads.js"

/**
 * How CPU devices run. `threads` (default `true`): the trainer gives each device a
 * worker thread for its replica; `false` keeps everything on the calling thread.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly threads?: boolean
}

const device = (index: number, options: Options): Backend => {
  const cpu = makeCpu(`cpu:${index}`)
  return options.threads === false ? cpu : markThreaded(cpu)
}

/**
 * A CPU device named `cpu:<index>`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options & { readonly index?: number } = {}): Effect.Effect<Backend> =>
  Effect.sync(() => device(options.index ?? 0, options))

/**
 * `count` CPU devices (`cpu:0` ... ).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMany = (count: number, options: Options = {}): Effect.Effect<ReadonlyArray<Backend>> =>
  Effect.sync(() => Array.from({ length: count }, (_, i) => device(i, options)))

/**
 * A CPU device without an Effect (for scripts and benchmarks); it runs on the
 * calling thread unless `threads` is set.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMake = (index = 0, options: Options = { threads: false }): Backend => device(index, options)
