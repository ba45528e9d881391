/**
 * Training progress for people: the trainer itself prints nothing and reports
 * through its stream of events; {@link render} taps that stream and writes one line
 * per event worth showing to a sink the caller chooses (a CLI's log, stderr).
 *
 * @since 0.2.0
 */
import { Effect, Stream } from "effect"
import type { Event } from "./Trainer.js"

/**
 * Where lines go and how chatty to be.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** Receives each line (without a newline). */
  readonly write: (line: string) => void
  /** Also show every `steps`-th step (default: no step lines, only epochs, checkpoints and the end). */
  readonly steps?: number
}

const rate = (samplesPerSecond: number) => `${Math.round(samplesPerSecond)} samples/s`

/**
 * The line for one event, or undefined when it shows nothing (steps not asked for).
 *
 * @since 0.2.0
 * @category formatting
 */
export const line = (event: Event, options: Pick<Options, "steps"> = {}): string | undefined => {
  switch (event._tag) {
    case "Started":
      return `training ${event.parameters} parameters on ${event.devices.join(", ")}${event.step > 0 ? ` from step ${event.step} (epoch ${event.epoch})` : ""}`
    case "Step":
      return options.steps !== undefined && options.steps > 0 && event.step % options.steps === 0
        ? `step ${event.step} (epoch ${event.epoch}, batch ${event.batch}): loss ${event.loss.toFixed(4)}, ${rate(event.samplesPerSecond)}, shards ${event.shards.join("/")}`
        : undefined
    case "Epoch":
      return `epoch ${event.epoch}: loss ${event.loss.toFixed(4)} over ${event.steps} steps, ${rate(event.samplesPerSecond)}`
    case "Checkpoint":
      return `checkpoint at step ${event.step}: ${event.path}`
    case "Completed":
      return `completed at step ${event.step}`
  }
}

/**
 * Writes a line for each event of a training stream as it passes, and passes the
 * events on unchanged: `Trainer.stream(options).pipe(Progress.render({ write }), Trainer.collect)`.
 *
 * @since 0.2.0
 * @category rendering
 */
export const render =
  (options: Options) =>
  <E, R>(events: Stream.Stream<Event, E, R>): Stream.Stream<Event, E, R> =>
    Stream.tap(events, (event) =>
      Effect.sync(() => {
        const text = line(event, options)
        if (text !== undefined) options.write(text)
      })
    )
