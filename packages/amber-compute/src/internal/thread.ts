import { Effect } from "effect"
import type { ComputeInput, Thread } from "../Algorithm.js"

/** Runs a compute function exported by a module in a worker thread. */
export const runInThread = (_thread: Thread, _input: ComputeInput<any, any>): Effect.Effect<unknown, Error> =>
  Effect.fail(new Error("worker threads are not available yet"))
