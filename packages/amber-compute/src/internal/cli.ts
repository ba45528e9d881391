/**
 * The `amber` command: plan, run, backfill, trigger, worker and status on a config
 * module. Flags are validated by @effect/cli before any work; a failure prints one
 * line (`--verbose` adds the cause chain); progress is rendered from the
 * resolver's and the worker's events (a bar on a terminal, plain lines otherwise).
 */
import { Command, Options, ValidationError } from "@effect/cli"
import { Cause, Console, Effect, HashMap, Layer, Option, Queue, type Scope } from "effect"
import * as AmberConfig from "../AmberConfig.js"
import { ComputeConfigError } from "../ComputeError.js"
import * as DistributedExecutor from "../DistributedExecutor.js"
import type * as EntitySource from "../EntitySource.js"
import * as Executor from "../Executor.js"
import * as Plan from "../Plan.js"
import * as Resolver from "../Resolver.js"
import type { RunEvent } from "../RunEvent.js"
import * as Trigger from "../Trigger.js"
import * as Worker from "../Worker.js"
import { makeRenderer, type Output } from "./cliRender.js"

const config = Options.file("config", { exists: "yes" }).pipe(
  Options.withAlias("c"),
  Options.withDescription("the config module (exports the mesh and the layer; default export or `config`)")
)
const verbose = Options.boolean("verbose").pipe(Options.withDescription("print the cause chain of a failure"))
const json = Options.boolean("json").pipe(Options.withDescription("print JSON instead of text"))
const local = Options.boolean("local").pipe(
  Options.withDescription("compute in this process even when the config names a distributed executor")
)
const feature = Options.text("feature").pipe(
  Options.withAlias("f"),
  Options.withDescription("a feature, `name@version` or `name` (the mesh's version)")
)
const features = feature.pipe(Options.atLeast(1))
const entity = Options.text("entity").pipe(
  Options.withAlias("e"),
  Options.withDescription("an entity id (repeat for several)"),
  Options.atLeast(1)
)
const kind = Options.text("kind").pipe(Options.withDescription("only entities of this kind"), Options.optional)
const parent = Options.text("parent").pipe(Options.withDescription("only children of this entity"), Options.optional)
const attribute = Options.keyValueMap("attribute").pipe(
  Options.withDescription("only entities whose attribute has this value (key=value)"),
  Options.optional
)
const concurrency = Options.integer("concurrency").pipe(
  Options.withDescription("tasks at once in this worker (1 to 1000)"),
  Options.withDefault(1)
)
const name = Options.text("name").pipe(Options.withDescription("the trigger's name (its cursor's key)"))
const once = Options.boolean("once").pipe(Options.withDescription("catch up with the change feed, then exit"))

/** The resolver on the config's layer, with the distributed executor when configured (and not `--local`). */
const appLayer = (cfg: AmberConfig.AmberConfig, inProcess: boolean) =>
  Resolver.layer(cfg.mesh, cfg.batchSize ? { batchSize: cfg.batchSize } : {}).pipe(
    Layer.provide(
      cfg.distributed && !inProcess
        ? DistributedExecutor.layer(cfg.distributed)
        : Executor.layerLocal({ concurrency: 4 })
    ),
    Layer.provideMerge(cfg.layer)
  ) as Layer.Layer<Resolver.Resolver | EntitySource.EntitySource, unknown>

/** Loads the config, builds the app, renders the resolver's events while `body` runs. */
const withApp = <A, E>(
  flags: { readonly config: string; readonly local?: boolean; readonly json?: boolean },
  body: (
    resolver: Resolver.Service,
    output: Output
  ) => Effect.Effect<A, E, Resolver.Resolver | EntitySource.EntitySource>
) =>
  Effect.gen(function* () {
    const cfg = yield* AmberConfig.load(flags.config)
    const output = makeRenderer({ json: flags.json ?? false })
    return yield* Effect.gen(function* () {
      const resolver = yield* Resolver.Resolver
      const events = yield* resolver.subscribe
      yield* Queue.take(events).pipe(
        Effect.tap((event: RunEvent) => Effect.sync(() => output.event(event))),
        Effect.forever,
        Effect.forkScoped
      )
      return yield* body(resolver, output).pipe(Effect.ensuring(Effect.sync(() => output.close())))
    }).pipe(Effect.provide(appLayer(cfg, flags.local ?? false)))
  })

/** Prints the outcome of runs and fails when one of them had failures. */
const finish = (output: Output, results: ReadonlyArray<Resolver.RunResult>) =>
  Effect.gen(function* () {
    for (const result of results) output.result(result)
    const failed = results.reduce((n, r) => n + r.failed.length, 0)
    if (failed > 0) {
      return yield* new ComputeConfigError({
        option: "run",
        message: `${failed} value(s) failed; \`amber status\` lists them, and a re-run retries only them`
      })
    }
  })

/** Runs a command body; a failure becomes one line on stderr (and the cause chain with --verbose). */
const guarded = <A, E>(flags: { readonly verbose: boolean }, body: Effect.Effect<A, E, Scope.Scope>) =>
  body.pipe(
    Effect.scoped,
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.failCause(cause)
        : Effect.gen(function* () {
            yield* Console.error(`amber: ${oneLine(cause)}`)
            if (flags.verbose) yield* Console.error(Cause.pretty(cause, { renderErrorCause: true }))
            return yield* Effect.sync(() => {
              process.exitCode = 1
            })
          })
    )
  )

const oneLine = (cause: Cause.Cause<unknown>): string => {
  const failure = Option.getOrUndefined(Cause.failureOption(cause))
  const error = failure ?? Cause.squash(cause)
  if (typeof error === "object" && error !== null && "message" in error && typeof error.message === "string") {
    const tag = "_tag" in error && typeof error._tag === "string" ? `${error._tag}: ` : ""
    return `${tag}${error.message.split("\n")[0]}`
  }
  return String(error)
}

const plan = Command.make("plan", { config, feature, entity, json, verbose }, (flags) =>
  guarded(
    flags,
    withApp({ ...flags, local: true }, (resolver) =>
      Effect.gen(function* () {
        const p = yield* resolver.plan(flags.feature, flags.entity)
        yield* Console.log(flags.json ? JSON.stringify(Plan.toJson(p), null, 2) : Plan.render(p))
      })
    )
  )
).pipe(Command.withDescription("show what materializing a feature would compute, and why, without computing"))

const run = Command.make("run", { config, feature, entity, local, json, verbose }, (flags) =>
  guarded(
    flags,
    withApp(flags, (resolver, output) =>
      Effect.flatMap(resolver.materialize(flags.feature, flags.entity), (result) => finish(output, [result]))
    )
  )
).pipe(
  Command.withDescription("materialize a feature for entities (through the workers when the config is distributed)")
)

const backfill = Command.make(
  "backfill",
  { config, features, kind, parent, attribute, local, json, verbose },
  (flags) =>
    guarded(
      flags,
      withApp(flags, (_resolver, output) =>
        Effect.gen(function* () {
          const attr = Option.getOrUndefined(flags.attribute)
          const entries = attr ? HashMap.toEntries(attr) : []
          if (entries.length > 1) {
            return yield* new ComputeConfigError({
              option: "attribute",
              message: "--attribute: give at most one key=value"
            })
          }
          const results = yield* Trigger.backfill(flags.features, {
            ...(Option.isSome(flags.kind) ? { kind: flags.kind.value } : {}),
            ...(Option.isSome(flags.parent) ? { parentId: flags.parent.value } : {}),
            ...(entries[0] ? { attribute: { key: entries[0][0], value: entries[0][1] } } : {})
          })
          yield* finish(output, results)
        })
      )
    )
).pipe(Command.withDescription("materialize features for every entity of their kind that matches a filter"))

const trigger = Command.make("trigger", { config, name, features, once, local, json, verbose }, (flags) =>
  guarded(
    flags,
    withApp(flags, (_resolver, output) =>
      Effect.gen(function* () {
        const t = yield* Trigger.make({ name: flags.name, features: flags.features })
        if (flags.once) {
          const steps = yield* t.catchUp
          yield* finish(
            output,
            steps.flatMap((s) => s.runs)
          )
          output.line(`trigger ${flags.name}: ${steps.reduce((n, s) => n + s.changes, 0)} change(s) processed`)
          return
        }
        return yield* t.run
      })
    )
  )
).pipe(Command.withDescription("follow the change feed and keep features materialized (until interrupted)"))

const worker = Command.make("worker", { config, concurrency, verbose }, (flags) =>
  guarded(
    flags,
    Effect.gen(function* () {
      const cfg = yield* AmberConfig.load(flags.config)
      const output = makeRenderer({ json: false })
      return yield* Worker.run({ config: cfg, concurrency: flags.concurrency, onEvent: output.worker })
    })
  )
).pipe(Command.withDescription("take tasks of the distributed executor until SIGTERM or SIGINT"))

const status = Command.make("status", { config, feature: feature.pipe(Options.repeated), json, verbose }, (flags) =>
  guarded(
    flags,
    Effect.gen(function* () {
      const cfg = yield* AmberConfig.load(flags.config)
      const features = yield* Effect.flatMap(Resolver.Resolver, (r) =>
        r.status(flags.feature.length > 0 ? flags.feature : undefined)
      ).pipe(Effect.provide(appLayer(cfg, true)))
      const queue = cfg.distributed ? yield* DistributedExecutor.status(cfg.distributed) : undefined
      const output = makeRenderer({ json: flags.json })
      output.status(features, queue)
      if (features.some((f) => f.failed > 0) || (queue && queue.byState.failed > 0)) {
        yield* Effect.sync(() => {
          process.exitCode = 3
        })
      }
    })
  )
).pipe(
  Command.withDescription(
    "per feature: stored, missing, blocked, failed and the last error; the queue's tasks and workers"
  )
)

/** The `amber` command. */
export const amber = Command.make("amber").pipe(
  Command.withDescription("materialize features of the feature mesh"),
  Command.withSubcommands([plan, run, backfill, trigger, worker, status])
)

/** Parses `argv` and runs; a usage error (printed by @effect/cli) sets exit code 2. */
export const main = (argv: ReadonlyArray<string>, version: string) =>
  Command.run(amber, { name: "amber", version })(argv).pipe(
    Effect.catchIf(ValidationError.isValidationError, () =>
      Effect.sync(() => {
        process.exitCode = 2
      })
    )
  )
