/**
 * Plans: what materializing a feature for some entities would do, per feature and
 * entity (`stored`, `missing`, `stale-version`, `stale-input`, `blocked`), printable
 * as a tree and as JSON, and the work as tasks in dependency order.
 *
 * @since 0.1.0
 */

/**
 * The state of one (feature, entity) value.
 *
 * - `stored`: the value for the current inputs is in the store;
 * - `missing`: never computed;
 * - `stale-version`: a value of an older version of the feature is stored;
 * - `stale-input`: a value of this version is stored, for other inputs (an asset or an upstream value changed);
 * - `blocked`: it cannot be computed (a missing asset or entity, or a dependency that cannot be computed).
 *
 * @since 0.1.0
 * @category models
 */
export type State = "stored" | "missing" | "stale-version" | "stale-input" | "blocked"

/**
 * One (feature, entity) of a plan.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  readonly entity: string
  readonly state: State
  /** The input fingerprint (absent when blocked). */
  readonly fingerprint?: string | undefined
  /** Why it is blocked or stale. */
  readonly reason?: string | undefined
}

/**
 * An input of a feature, as the plan shows it.
 *
 * @since 0.1.0
 * @category models
 */
export interface InputInfo {
  readonly key: string
  readonly kind: "asset" | "feature" | "children" | "parent"
  /** The role of an asset input, the feature label of the others. */
  readonly source: string
}

/**
 * The plan of one feature.
 *
 * @since 0.1.0
 * @category models
 */
export interface FeaturePlan {
  /** `name@version`. */
  readonly feature: string
  readonly name: string
  readonly version: number
  /** Its depth in the mesh: 0 for features that read only assets. */
  readonly level: number
  readonly inputs: ReadonlyArray<InputInfo>
  readonly entries: ReadonlyArray<Entry>
}

/**
 * A plan: the target feature and entities, and every feature they need, producers first.
 *
 * @since 0.1.0
 * @category models
 */
export interface Plan {
  readonly _tag: "Plan"
  readonly feature: string
  readonly entities: ReadonlyArray<string>
  readonly features: ReadonlyArray<FeaturePlan>
}

/**
 * One unit of work: compute one feature for a batch of entities.
 *
 * @since 0.1.0
 * @category models
 */
export interface Task {
  /** `name@version`. */
  readonly feature: string
  readonly entities: ReadonlyArray<string>
}

/**
 * Counts of entries by state.
 *
 * @since 0.1.0
 * @category models
 */
export type Counts = { readonly [S in State]: number } & { readonly total: number }

const STATES: ReadonlyArray<State> = ["stored", "missing", "stale-version", "stale-input", "blocked"]

/**
 * Whether a state needs computing.
 *
 * @since 0.1.0
 * @category utils
 */
export const needsCompute = (state: State): boolean =>
  state === "missing" || state === "stale-version" || state === "stale-input"

/**
 * The tasks of a plan in dependency order: a list of levels, each a list of tasks
 * that can run in parallel once the levels before it are done. Each task holds at
 * most `batchSize` entities of one feature.
 *
 * @since 0.1.0
 * @category utils
 */
export const tasks = (plan: Plan, batchSize = 100): ReadonlyArray<ReadonlyArray<Task>> => {
  const size = Math.max(1, Math.floor(batchSize))
  const levels: Array<Array<Task>> = []
  for (const feature of plan.features) {
    const todo = feature.entries.filter((e) => needsCompute(e.state)).map((e) => e.entity)
    if (todo.length === 0) continue
    const level = (levels[feature.level] ??= [])
    for (let i = 0; i < todo.length; i += size)
      level.push({ feature: feature.feature, entities: todo.slice(i, i + size) })
  }
  return levels.filter((l) => l !== undefined && l.length > 0)
}

/**
 * Counts of a feature's entries by state.
 *
 * @since 0.1.0
 * @category utils
 */
export const counts = (feature: FeaturePlan): Counts => {
  const c: Record<string, number> = { total: feature.entries.length }
  for (const s of STATES) c[s] = 0
  for (const e of feature.entries) c[e.state]!++
  return c as Counts
}

/**
 * The plan as plain JSON (per feature: counts and entries).
 *
 * @since 0.1.0
 * @category utils
 */
export const toJson = (plan: Plan) => ({
  feature: plan.feature,
  entities: plan.entities,
  features: plan.features.map((f) => ({
    feature: f.feature,
    level: f.level,
    inputs: f.inputs,
    counts: counts(f),
    entries: f.entries
  }))
})

/**
 * The plan as a tree of features (the target at the root, its inputs below), with
 * counts per feature and one line per entity that is not stored (at most
 * `maxEntities` per feature, default 10).
 *
 * @since 0.1.0
 * @category utils
 */
export const render = (plan: Plan, options: { readonly maxEntities?: number } = {}): string => {
  const max = options.maxEntities ?? 10
  const byLabel = new Map(plan.features.map((f) => [f.feature, f]))
  const lines: Array<string> = []
  const summary = (f: FeaturePlan) => {
    const c = counts(f)
    const parts = STATES.filter((s) => c[s] > 0).map((s) => `${c[s]} ${s}`)
    return `${f.feature} (${c.total} ${c.total === 1 ? "entity" : "entities"}${parts.length ? `: ${parts.join(", ")}` : ""})`
  }
  const walk = (f: FeaturePlan, prefix: string, via: string, seen: ReadonlySet<string>) => {
    lines.push(`${via}${summary(f)}`)
    const children: Array<{ text?: string; feature?: FeaturePlan; via: string }> = []
    const pending = f.entries.filter((e) => e.state !== "stored")
    for (const e of pending.slice(0, max)) {
      children.push({ text: `${e.entity}: ${e.state}${e.reason ? ` (${e.reason})` : ""}`, via: "" })
    }
    if (pending.length > max) children.push({ text: `... ${pending.length - max} more`, via: "" })
    for (const input of f.inputs) {
      if (input.kind === "asset") children.push({ text: `asset ${input.source} [${input.key}]`, via: "" })
      else {
        const dep = byLabel.get(input.source)
        const label = input.kind === "feature" ? "" : `${input.kind} `
        if (dep === undefined || seen.has(dep.feature)) {
          children.push({ text: `${label}${input.source} [${input.key}]`, via: "" })
        } else children.push({ feature: dep, via: `${label}[${input.key}] ` })
      }
    }
    children.forEach((c, i) => {
      const last = i === children.length - 1
      const branch = `${prefix}${last ? "└─ " : "├─ "}`
      if (c.feature) {
        const before = lines.length
        walk(c.feature, `${prefix}${last ? "   " : "│  "}`, `${c.via}`, new Set([...seen, f.feature]))
        lines[before] = `${branch}${lines[before]}`
      } else lines.push(`${branch}${c.text}`)
    })
  }
  const root = byLabel.get(plan.feature)
  if (root) walk(root, "", "", new Set())
  return lines.join("\n")
}
