import { Cause, Clock, Deferred, Effect, Exit, PubSub, Stream } from "effect"
import { FeatureSpec, FeatureStore } from "@org/amber-store"
import { StorageError } from "@org/storage"
import { randomBytes } from "node:crypto"
import type * as Algorithm from "../Algorithm.js"
import {
  type ComputeFailure,
  ComputeFailedError,
  ComputeTimeoutError,
  failureJson,
  fromJson,
  InvalidOutputError,
  StoreFailedError
} from "../ComputeError.js"
import { EntitySource } from "../EntitySource.js"
import { Executor, type TaskResult } from "../Executor.js"
import * as Mesh from "../Mesh.js"
import * as Plan from "../Plan.js"
import type { Options, RunResult, Service, FeatureStatus } from "../Resolver.js"
import type { RunEvent } from "../RunEvent.js"
import * as Graph from "./graph.js"
import type { State } from "./state.js"
import { runInThread } from "./thread.js"

const errorMessage = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  const error: unknown = failure._tag === "Some" ? failure.value : Cause.squash(cause)
  return StorageError.messageOf(error)
}

export const make = <R>(mesh: Mesh.Mesh<R>, options: Options, state: State) =>
  Effect.gen(function* () {
    const store = yield* FeatureStore.FeatureStore
    const source = yield* EntitySource
    const executor = yield* Executor
    const context = yield* Effect.context<R>()
    const events = yield* PubSub.unbounded<RunEvent>()
    const batchSize = options.batchSize ?? 100
    const memo = Graph.makeMemo(options.fingerprintCache ?? 100_000)
    const semaphores = new Map<string, Effect.Semaphore>()
    for (const algorithm of mesh.algorithms) {
      semaphores.set(FeatureSpec.label(algorithm.feature), Effect.unsafeMakeSemaphore(algorithm.concurrency))
    }
    const publish = (event: RunEvent) => PubSub.publish(events, event)
    const newRun = Effect.map(
      Clock.currentTimeMillis,
      (now) => `${options.runPrefix ?? "run"}-${now.toString(36)}-${randomBytes(4).toString("hex")}`
    )

    const fields = (algorithm: Algorithm.Algorithm, entity: string, message: string) => ({
      feature: algorithm.feature.name,
      version: algorithm.feature.version,
      entity,
      message: `${FeatureSpec.label(algorithm.feature)} for ${entity}: ${message}`
    })

    /** Runs a compute effect with the algorithm's limits, its failures as tagged errors. */
    const guard = <A>(
      algorithm: Algorithm.Algorithm,
      label: string,
      entity: string,
      compute: Effect.Effect<A, unknown, any>
    ): Effect.Effect<A, ComputeFailure> => {
      const mapped = Effect.suspend(() => compute).pipe(
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.failCause(cause as Cause.Cause<never>)
            : Effect.fail(
                new ComputeFailedError({
                  ...fields(algorithm, entity, `the compute function failed: ${errorMessage(cause)}`),
                  cause: Cause.squash(cause)
                })
              )
        ),
        Effect.provide(context)
      ) as Effect.Effect<A, ComputeFailure>
      const timed =
        algorithm.timeoutMs === undefined
          ? mapped
          : Effect.timeoutFail(mapped, {
              duration: algorithm.timeoutMs,
              onTimeout: () =>
                new ComputeTimeoutError({
                  ...fields(
                    algorithm,
                    entity,
                    `the compute function ran past its timeout of ${algorithm.timeoutMs} ms`
                  ),
                  timeoutMs: algorithm.timeoutMs!
                })
            })
      return semaphores.get(label)!.withPermits(1)(timed)
    }

    const inputOf = (graph: Graph.Graph, algorithm: Algorithm.Algorithm, node: Graph.Node) => {
      const inputs: Record<string, unknown> = {}
      for (const [key, input] of Object.entries(algorithm.inputs)) {
        if (input._tag === "Asset") inputs[key] = node.assets![key]
        else {
          const values = graph.values.get(FeatureSpec.label(input.feature))!
          const ids = node.related![key]!
          if (input._tag === "Feature") inputs[key] = values.get(ids[0]!)
          else {
            const related = ids.map((id) => ({ entity: graph.entities.get(id)!, value: values.get(id) }))
            inputs[key] = input._tag === "Parent" ? related[0] : related
          }
        }
      }
      return { entity: graph.entities.get(node.entity)!, inputs, params: algorithm.params }
    }

    const computeOne = (algorithm: Algorithm.Algorithm, input: Algorithm.ComputeInput<any, any>) =>
      algorithm.thread !== undefined ? runInThread(algorithm.thread, input) : algorithm.compute!(input)

    /**
     * Computes one feature for a batch of entities in a graph, ensuring first that
     * their inputs are stored (computing missing ones in this process).
     */
    const runTaskIn = (
      graph: Graph.Graph,
      task: Plan.Task,
      run: string,
      /** Features with no failure recorded when the run was planned: nothing to clear for them. */
      clean?: ReadonlySet<string>,
      /** The task's entities were missing when the run was planned: not read again before claiming. */
      planned = false
    ): Effect.Effect<TaskResult, any> =>
      Effect.gen(function* () {
        const started = performance.now()
        const algorithm = yield* Mesh.algorithm(mesh, task.feature)
        const label = FeatureSpec.label(algorithm.feature)
        const spec = algorithm.feature
        yield* publish({ _tag: "Started", run, feature: label, entities: task.entities.length })
        yield* Graph.expand(graph, label, task.entities)
        const fn = graph.features.get(label)!
        const nodes = task.entities.map((id) => fn.nodes.get(id)!)
        if (planned) {
          for (const node of nodes) {
            if (node.stored === undefined && node.fp !== undefined && node.failure === undefined) node.stored = false
          }
        } else yield* Graph.lookup(graph, label, nodes)
        const failed: Array<ComputeFailure> = []
        const cached: Array<string> = []
        const computed: Array<string> = []
        let todo: Array<Graph.Node> = []
        for (const node of nodes) {
          if (node.failure !== undefined) failed.push(node.failure)
          else if (node.stored) cached.push(node.entity)
          else todo.push(node)
        }
        // ensure the inputs of what is left
        for (const [key, input, depLabel] of Graph.dependencyInputs(algorithm)) {
          if (todo.length === 0) break
          const depNodes = graph.features.get(depLabel)!.nodes
          const ids = new Set<string>()
          for (const node of todo) for (const id of node.related![key]!) ids.add(id)
          const deps = [...ids].map((id) => depNodes.get(id)!)
          yield* Graph.lookup(graph, depLabel, deps)
          const missing = deps.filter((d) => d.failure === undefined && !d.stored).map((d) => d.entity)
          if (missing.length > 0) {
            const depAlgorithm = graph.mesh.byLabel.get(depLabel)!
            for (let i = 0; i < missing.length; i += depAlgorithm.batchSize) {
              yield* runTaskIn(
                graph,
                { feature: depLabel, entities: missing.slice(i, i + depAlgorithm.batchSize) },
                run,
                clean
              )
            }
          }
          const ready: Array<Graph.Node> = []
          for (const node of todo) {
            const bad = node.related![key]!.find((id) => !depNodes.get(id)!.stored)
            if (bad === undefined) ready.push(node)
            else {
              node.failure = Graph.blockedBy(algorithm, node.entity, input.feature, bad, depNodes.get(bad)!.failure)
              failed.push(node.failure)
            }
          }
          todo = ready
        }
        const provenance = { producer: algorithm.producer, run }
        let values = graph.values.get(label)
        if (values === undefined) graph.values.set(label, (values = new Map()))
        const settle = (node: Graph.Node, ran: boolean, result: Exit.Exit<unknown, unknown>) => {
          if (Exit.isSuccess(result)) {
            node.stored = true
            values!.set(node.entity, result.value)
            ;(ran ? computed : cached).push(node.entity)
            return
          }
          const error = Cause.failureOption(result.cause)
          let failure: ComputeFailure
          if (error._tag === "Some") {
            const e = error.value as { _tag?: string; message?: string }
            if (e._tag === "InvalidValueError") {
              failure = new InvalidOutputError(fields(algorithm, node.entity, `the value is invalid: ${e.message}`))
            } else if (
              e._tag === "ComputeFailedError" ||
              e._tag === "ComputeTimeoutError" ||
              e._tag === "InvalidOutputError"
            ) {
              failure = e as ComputeFailure
            } else {
              failure = new StoreFailedError({
                ...fields(algorithm, node.entity, `the store failed: ${e.message}`),
                cause: e
              })
            }
          } else {
            failure = new ComputeFailedError({
              ...fields(algorithm, node.entity, `the compute function died: ${errorMessage(result.cause)}`),
              cause: Cause.squash(result.cause)
            })
          }
          node.failure = failure
          failed.push(failure)
        }
        if (algorithm.computeBatch === undefined) {
          // one batched claim and one batched write for the task, not ~10 round trips per value
          const ran: Array<boolean> = new Array(todo.length).fill(false)
          const exits = yield* store.getOrComputeMany(
            spec,
            todo.map((node, i) => ({
              entity: node.entity,
              fingerprint: node.fp!,
              compute: Effect.suspend(() => {
                ran[i] = true
                return guard(algorithm, label, node.entity, computeOne(algorithm, inputOf(graph, algorithm, node)))
              })
            })),
            // every key here was just read (or planned) and found missing: claimed at once
            { ...provenance, concurrency: algorithm.concurrency, readFirst: false }
          )
          exits.forEach((exit, i) => settle(todo[i]!, ran[i]!, exit))
        } else {
          const chunks: Array<Array<Graph.Node>> = []
          for (let i = 0; i < todo.length; i += algorithm.batchSize) chunks.push(todo.slice(i, i + algorithm.batchSize))
          yield* Effect.forEach(chunks, (chunk) => runBatch(graph, algorithm, label, chunk, provenance, settle), {
            concurrency: algorithm.concurrency,
            discard: true
          })
        }
        const now = yield* Clock.currentTimeMillis
        yield* state.recordFailures(
          failed.map((f) => ({
            ...failureJson(f),
            fingerprint: fn.nodes.get(f.entity)?.fp?.hash ?? null,
            run,
            at: now
          }))
        )
        if (!clean?.has(label)) yield* state.clearFailures(spec.name, spec.version, [...computed, ...cached])
        const ms = performance.now() - started
        if (computed.length > 0)
          yield* publish({ _tag: "Computed", run, feature: label, entities: computed.length, ms })
        if (cached.length > 0) yield* publish({ _tag: "Cached", run, feature: label, entities: cached.length })
        for (const f of failed) {
          yield* publish({ _tag: "Failed", run, feature: label, entity: f.entity, error: failureJson(f) })
        }
        return { feature: label, computed, cached, failed, ms }
      })

    /**
     * One `computeBatch` call for the keys of a chunk that this process claims: each
     * key goes through `getOrCompute` (single-flight, claims); the computations of the
     * claimed keys are gathered and run as one batch.
     */
    const runBatch = (
      graph: Graph.Graph,
      algorithm: Algorithm.Algorithm,
      label: string,
      chunk: ReadonlyArray<Graph.Node>,
      provenance: { producer: string; run: string },
      settle: (node: Graph.Node, ran: boolean, exit: Exit.Exit<unknown, unknown>) => void
    ) =>
      Effect.gen(function* () {
        let undecided = chunk.length
        const waiting: Array<{ node: Graph.Node; deferred: Deferred.Deferred<unknown, ComputeFailure> }> = []
        const flush = Effect.suspend(() => {
          const batch = waiting.splice(0)
          if (batch.length === 0) return Effect.void
          const inputs = batch.map((w) => inputOf(graph, algorithm, w.node))
          const entity = batch.length === 1 ? batch[0]!.node.entity : `${batch.length} entities`
          return Effect.exit(
            guard(
              algorithm,
              label,
              entity,
              Effect.suspend(() => algorithm.computeBatch!(inputs))
            )
          ).pipe(
            Effect.flatMap((exit) =>
              Effect.forEach(
                batch,
                (w, i) => {
                  if (Exit.isFailure(exit)) {
                    const error = Cause.failureOption(exit.cause)
                    const message = error._tag === "Some" ? error.value.message : errorMessage(exit.cause)
                    const failure =
                      error._tag === "Some" && error.value._tag === "ComputeTimeoutError"
                        ? new ComputeTimeoutError({
                            ...fields(algorithm, w.node.entity, message),
                            timeoutMs: error.value.timeoutMs
                          })
                        : new ComputeFailedError(fields(algorithm, w.node.entity, `the batch failed: ${message}`))
                    return Deferred.fail(w.deferred, failure)
                  }
                  const values = exit.value
                  if (!Array.isArray(values) || values.length !== batch.length) {
                    return Deferred.fail(
                      w.deferred,
                      new InvalidOutputError(
                        fields(
                          algorithm,
                          w.node.entity,
                          `computeBatch returned ${Array.isArray(values) ? values.length : typeof values} values for ${batch.length} inputs`
                        )
                      )
                    )
                  }
                  return Deferred.succeed(w.deferred, values[i])
                },
                { discard: true }
              )
            )
          )
        })
        const decided = Effect.suspend(() => (--undecided === 0 ? flush : Effect.void))
        yield* Effect.forEach(
          chunk,
          (node) => {
            let ran = false
            const compute = Effect.gen(function* () {
              ran = true
              const deferred = yield* Deferred.make<unknown, ComputeFailure>()
              waiting.push({ node, deferred })
              yield* decided
              return yield* Deferred.await(deferred)
            })
            return Effect.exit(store.getOrCompute(algorithm.feature, node.entity, node.fp!, compute, provenance)).pipe(
              Effect.tap(() => (ran ? Effect.void : decided)),
              Effect.map((exit) => settle(node, ran, exit))
            )
          },
          { concurrency: "unbounded", discard: true }
        )
      })

    const planOf = (
      graph: Graph.Graph,
      label: string,
      ids: ReadonlyArray<string>,
      needed: Map<string, Set<string>>,
      lineage: Graph.Lineage | undefined
    ) =>
      Effect.gen(function* () {
        const features: Array<Plan.FeaturePlan> = []
        for (const l of Mesh.upstreamOf(mesh, label)) {
          const want = needed.get(l)
          if (want === undefined) continue
          const fn = graph.features.get(l)!
          const nodes = [...want].map((id) => fn.nodes.get(id)!)
          yield* Graph.classify(graph, l, nodes, lineage)
          const algorithm = fn.algorithm
          features.push({
            feature: l,
            name: algorithm.feature.name,
            version: algorithm.feature.version,
            level: mesh.levels.get(l)!,
            inputs: Object.entries(algorithm.inputs).map(([key, input]) =>
              input._tag === "Asset"
                ? { key, kind: "asset" as const, source: input.role }
                : {
                    key,
                    kind:
                      input._tag === "Feature"
                        ? ("feature" as const)
                        : input._tag === "Children"
                          ? ("children" as const)
                          : ("parent" as const),
                    source: FeatureSpec.label(input.feature)
                  }
            ),
            entries: nodes.map((n) => {
              const entry: { entity: string; state: Plan.State; fingerprint?: string; reason?: string } = {
                entity: n.entity,
                state: n.state!
              }
              if (n.fp) entry.fingerprint = n.fp.hash
              if (n.reason !== undefined) entry.reason = n.reason
              return entry
            })
          })
        }
        return { _tag: "Plan" as const, feature: label, entities: [...ids], features }
      })

    const labelOf = (feature: string | FeatureSpec.FeatureSpec<any>) =>
      Effect.map(Mesh.algorithm(mesh, feature), (a) => FeatureSpec.label(a.feature))

    /**
     * Entities walked at once: `chunkSize`, else 10,000 for a materialization (fewer,
     * bigger batched reads) and 3,000 for a plan, which keeps only its entries, so that
     * a smaller walk leaves less garbage at once (100,000 entities: 410-455 MB peak RSS
     * against 460-505 MB with 10,000, and no slower).
     */
    const chunked = (ids: ReadonlyArray<string>, fallback: number) => {
      const size = options.chunkSize ?? fallback
      const out: Array<ReadonlyArray<string>> = []
      for (let i = 0; i < ids.length; i += size) out.push(ids.slice(i, i + size))
      return out.length === 0 ? [[]] : out
    }

    const plan: Service["plan"] = (feature, entities) =>
      Effect.gen(function* () {
        const label = yield* labelOf(feature)
        const ids = [...new Set(entities)]
        const lineage = Graph.lineageLookup(store, ids.length)
        // the walk goes chunk by chunk: its memory stays bounded, the plan holds only entries
        const chunks = chunked(ids, 3_000)
        // features of the same entities as the target (reached through same-entity inputs
        // only) have disjoint entries chunk by chunk: no need to look for repeats
        const disjoint = chunks.length === 1 ? undefined : Graph.sameEntityLabels(mesh, label)
        const merged = new Map<
          string,
          { plan: Plan.FeaturePlan; entries: Array<Plan.Entry>; seen: Set<string> | undefined }
        >()
        for (const chunk of chunks) {
          const graph = Graph.make(mesh, source, store, false)
          yield* Graph.expand(graph, label, chunk)
          const needed = yield* Graph.check(graph, label, chunk, false)
          const part = yield* planOf(graph, label, chunk, needed, lineage)
          for (const f of part.features) {
            let m = merged.get(f.feature)
            if (m === undefined) {
              const seen = disjoint === undefined || disjoint.has(f.feature) ? undefined : new Set<string>()
              merged.set(f.feature, (m = { plan: f, entries: [], seen }))
            }
            const { entries, seen } = m
            for (const e of f.entries) {
              if (seen !== undefined) {
                if (seen.has(e.entity)) continue
                seen.add(e.entity)
              }
              entries.push(e)
            }
          }
        }
        const features = Mesh.upstreamOf(mesh, label)
          .filter((l) => merged.has(l))
          .map((l) =>
            chunks.length === 1 ? merged.get(l)!.plan : { ...merged.get(l)!.plan, entries: merged.get(l)!.entries }
          )
        return { _tag: "Plan" as const, feature: label, entities: ids, features }
      })

    interface Totals {
      computed: number
      cached: number
      readonly failed: Array<ComputeFailure>
      readonly perFeature: Record<string, { computed: number; cached: number; failed: number }>
    }

    const materialize: Service["materialize"] = (feature, entities, runOptions = {}) =>
      Effect.gen(function* () {
        const started = performance.now()
        const label = yield* labelOf(feature)
        const ids = [...new Set(entities)]
        const run = runOptions.run ?? (yield* newRun)
        const totals: Totals = { computed: 0, cached: 0, failed: [], perFeature: {} }
        for (const chunk of chunked(ids, 10_000)) yield* materializeChunk(label, chunk, run, runOptions, totals)
        const result: RunResult = {
          run,
          feature: label,
          entities: ids.length,
          computed: totals.computed,
          cached: totals.cached,
          failed: totals.failed,
          features: totals.perFeature,
          ms: performance.now() - started
        }
        yield* publish({
          _tag: "Finished",
          run,
          feature: label,
          computed: result.computed,
          cached: result.cached,
          failed: result.failed.length,
          ms: result.ms
        })
        return result
      })

    const materializeChunk = (
      label: string,
      ids: ReadonlyArray<string>,
      run: string,
      runOptions: { readonly batchSize?: number },
      totals: Totals
    ) =>
      Effect.gen(function* () {
        const started = performance.now()
        const graph = Graph.make(mesh, source, store, true, memo)
        // the failures recorded so far are read while the graph is walked (one round trip, not one per feature)
        const [recorded, thePlan] = yield* Effect.all(
          [
            state.failures(),
            Effect.gen(function* () {
              yield* Graph.expand(graph, label, ids)
              const needed = yield* Graph.check(graph, label, ids, true)
              return yield* planOf(graph, label, ids, needed, undefined)
            })
          ],
          { concurrency: 2 }
        )
        const recordedOf = (f: Plan.FeaturePlan) =>
          recorded.filter((r) => r.feature === f.name && r.version === f.version)
        const levels = Plan.tasks(thePlan, runOptions.batchSize ?? batchSize)
        const counts: Record<string, Plan.Counts> = {}
        for (const f of thePlan.features) counts[f.feature] = Plan.counts(f)
        yield* publish({
          _tag: "Planned",
          run,
          feature: label,
          entities: ids.length,
          tasks: levels.reduce((n, l) => n + l.length, 0),
          counts,
          ms: performance.now() - started
        })
        const clean = new Set<string>()
        for (const f of thePlan.features) if (recordedOf(f).length === 0) clean.add(f.feature)
        const results = yield* executor.execute({
          run,
          levels,
          clean,
          publish: (event) => Effect.asVoid(publish(event)),
          runTask: (task) =>
            runTaskIn(graph, task, run, clean).pipe(
              Effect.catchAllCause((cause) => {
                // a task that fails as a whole (the store or the source failed): every entity fails
                const algorithm = mesh.byLabel.get(task.feature)!
                const message = errorMessage(cause)
                return Effect.succeed<TaskResult>({
                  feature: task.feature,
                  computed: [],
                  cached: [],
                  failed: task.entities.map(
                    (entity) =>
                      new StoreFailedError({
                        ...fields(algorithm, entity, `the task failed: ${message}`),
                        cause: Cause.squash(cause)
                      })
                  ),
                  ms: 0
                })
              })
            )
        })
        // blocked values found while walking: failures of this run too
        const add = (feature: string) => (totals.perFeature[feature] ??= { computed: 0, cached: 0, failed: 0 })
        const now = yield* Clock.currentTimeMillis
        for (const f of thePlan.features) {
          const c = add(f.feature)
          let stored = 0
          for (const e of f.entries) if (e.state === "stored") stored++
          c.cached += stored
          totals.cached += stored
          if (stored > 0) {
            // a failure recorded earlier whose value is stored now (another process computed it) is over
            const before = recordedOf(f)
            if (before.length > 0) {
              const storedNow = new Set(f.entries.filter((e) => e.state === "stored").map((e) => e.entity))
              const over = before.filter((r) => storedNow.has(r.entity)).map((r) => r.entity)
              if (over.length > 0) yield* state.clearFailures(f.name, f.version, over)
            }
          }
          const blocked = f.entries
            .filter((e) => e.state === "blocked")
            .map((e) => graph.features.get(f.feature)!.nodes.get(e.entity)!.failure!)
          c.failed += blocked.length
          totals.failed.push(...blocked)
          yield* state.recordFailures(blocked.map((b) => ({ ...failureJson(b), fingerprint: null, run, at: now })))
        }
        for (const r of results) {
          const c = add(r.feature)
          c.computed += r.computed.length
          c.cached += r.cached.length
          c.failed += r.failed.length
          totals.computed += r.computed.length
          totals.cached += r.cached.length
          totals.failed.push(...r.failed)
        }
      })

    /**
     * A task of a run that is already going (a worker's task): the inputs whose
     * compute failed earlier in the run, with the same fingerprint, are failures here
     * too, not computed again by every consumer's task.
     */
    const failedEarlierInRun = (graph: Graph.Graph, task: Plan.Task, run: string) =>
      Effect.gen(function* () {
        const algorithm = mesh.byLabel.get(task.feature)
        if (algorithm === undefined) return
        yield* Graph.expand(graph, task.feature, task.entities)
        for (const [label, fn] of graph.features) {
          if (label === task.feature || fn.nodes.size === 0) continue
          const spec = fn.algorithm.feature
          for (const record of yield* state.failures({ name: spec.name, version: spec.version }, run)) {
            // a store failure may be transient and a blocked input is re-derived from its own inputs: both are tried again
            if (record._tag === "StoreFailedError" || record._tag === "BlockedError") continue
            const node = fn.nodes.get(record.entity)
            if (node !== undefined && node.failure === undefined && node.fp?.hash === record.fingerprint) {
              node.failure = fromJson({ ...record })
            }
          }
        }
      })

    const runTask: Service["runTask"] = (task, runOptions = {}) =>
      Effect.gen(function* () {
        const run = runOptions.run ?? (yield* newRun)
        const graph = Graph.make(mesh, source, store, true, memo)
        if (runOptions.run !== undefined) yield* failedEarlierInRun(graph, task, run)
        const clean = runOptions.clean === true ? new Set([yield* labelOf(task.feature)]) : undefined
        return yield* runTaskIn(graph, task, run, clean, runOptions.planned === true)
      })

    const status: Service["status"] = (features) =>
      Effect.gen(function* () {
        const labels = features === undefined ? mesh.order : yield* Effect.forEach(features, (f) => labelOf(f))
        const out: Array<FeatureStatus> = []
        for (const label of labels) {
          const algorithm = mesh.byLabel.get(label)!
          const entities = yield* source.list({ kind: algorithm.feature.entity })
          const p = yield* plan(
            label,
            entities.map((e) => e.id)
          )
          const own = p.features.find((f) => f.feature === label)
          const c = own ? Plan.counts(own) : undefined
          const failures = yield* state.failures({ name: algorithm.feature.name, version: algorithm.feature.version })
          const last = failures.at(-1)
          out.push({
            feature: label,
            entities: entities.length,
            stored: c?.stored ?? 0,
            missing: c === undefined ? 0 : c.missing + c["stale-input"] + c["stale-version"],
            blocked: c?.blocked ?? 0,
            failed: failures.length,
            lastError: last === undefined ? undefined : { ...failureJson(last), at: last.at, run: last.run }
          })
        }
        return out
      })

    const service: Service = {
      mesh,
      plan,
      materialize,
      runTask,
      status,
      failures: (feature) =>
        feature === undefined
          ? state.failures()
          : Effect.flatMap(Mesh.algorithm(mesh, feature), (a) =>
              state.failures({ name: a.feature.name, version: a.feature.version })
            ),
      subscribe: PubSub.subscribe(events),
      events: Stream.unwrapScoped(Effect.map(PubSub.subscribe(events), (q) => Stream.fromQueue(q))),
      cursor: (name) => state.getCursor(name),
      setCursor: (name, position) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => state.setCursor(name, position, now))
    }
    return service
  })
