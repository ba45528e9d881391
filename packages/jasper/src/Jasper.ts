/**
 * One layer for the whole of Jasper: readers, the catalog and derivatives on the
 * `Database` an application provides.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import type { Database, StorageError } from "@org/storage"
import * as Catalog from "./Catalog.js"
import * as Derivative from "./Derivative.js"
import type * as JasperError from "./JasperError.js"
import * as Process from "./internal/process.js"
import * as Reader from "./Reader.js"

/**
 * Options of {@link layer}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Reader.LayerOptions, Catalog.Options {
  /** The folder derivatives are stored under. */
  readonly derivatives: string
}

/**
 * `Reader`, `Catalog` and `Derivatives` on the `Database` below.
 *
 * @example
 * ```ts
 * const App = Jasper.layer({ roots: ["./media"], derivatives: "./derivatives" }).pipe(
 *   Layer.provide(SqliteStorage.layer({ filename: "media.db" }))
 * )
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  Reader.Reader | Catalog.Catalog | Derivative.Derivatives,
  StorageError.StorageError | JasperError.JasperConfigError,
  Database.Database
> => {
  // each layer decodes its own options (an unknown one left over is refused by Reader.layer, naming it)
  const { derivatives, pixelLimit, ...readerOptions } = options
  const readers = Reader.layer(readerOptions)
  const catalog = Catalog.layer(pixelLimit === undefined ? {} : { pixelLimit }).pipe(Layer.provideMerge(readers))
  return Derivative.layer({ dir: derivatives }).pipe(Layer.provideMerge(catalog))
}

/**
 * One binary in use: its path, where it was found, and what `-version` says.
 *
 * @since 0.2.0
 * @category models
 */
export interface Binary {
  readonly path: string
  /** `env` (JASPER_FFMPEG / JASPER_FFPROBE), `path` (found on PATH) or `bundled` (the npm fallback). */
  readonly source: "env" | "path" | "bundled"
  /** The version word of `-version` (`5.1.9-0+deb12u1`, `N-47683-g0e8eb07980-static`); absent when it does not run. */
  readonly version?: string | undefined
  /** The last year of its copyright line: the generation of the build (`2018`, `2026`). */
  readonly year?: number | undefined
}

/**
 * Which ffmpeg and ffprobe Jasper uses, their versions, and whether they come from
 * one build (`sameBuild`); `notes` says why a choice was made or what is odd.
 *
 * @since 0.2.0
 * @category models
 */
export interface Diagnostics {
  readonly ffmpeg: Binary
  readonly ffprobe: Binary
  /** True when both report the same version (one build); false for the bundled 2018 ffmpeg + 2023 ffprobe. */
  readonly sameBuild: boolean
  readonly notes: ReadonlyArray<string>
}

const versionOf = (bin: Process.Binary) =>
  Effect.map(Effect.either(Effect.timeout(Process.run(bin.path, ["-version"]), "10 seconds")), (res): Binary => {
    const first = res._tag === "Right" && res.right.code === 0 ? res.right.stdout.toString("utf8").split("\n")[0]! : ""
    const version = /version\s+(\S+)/.exec(first)?.[1]
    const year = /\d{4}-(\d{4})/.exec(first)?.[1]
    return { ...bin, ...(version ? { version } : {}), ...(year ? { year: Number(year) } : {}) }
  })

/**
 * Which ffmpeg/ffprobe pair is in use and their versions. The pair is chosen once:
 * `JASPER_FFMPEG`/`JASPER_FFPROBE`, else both `ffmpeg` and `ffprobe` on `PATH`, else
 * the bundled fallbacks (never a system ffmpeg with a bundled ffprobe).
 *
 * @example
 * ```ts
 * const d = yield* Jasper.diagnostics
 * console.log(`ffmpeg ${d.ffmpeg.version} (${d.ffmpeg.source}), ffprobe ${d.ffprobe.version}`)
 * ```
 * @since 0.2.0
 * @category diagnostics
 */
export const diagnostics: Effect.Effect<Diagnostics> = Effect.gen(function* () {
  const chosen = yield* Effect.either(Process.pair)
  if (chosen._tag === "Left") {
    const missing: Binary = { path: "", source: "bundled" }
    return { ffmpeg: missing, ffprobe: missing, sameBuild: false, notes: [chosen.left.message] }
  }
  const pair = chosen.right
  const [ffmpeg, ffprobe] = yield* Effect.all([versionOf(pair.ffmpeg), versionOf(pair.ffprobe)], {
    concurrency: 2
  })
  const notes = [...pair.notes]
  for (const b of [ffmpeg, ffprobe]) if (!b.version) notes.push(`${b.path} does not run (-version failed)`)
  const sameBuild = ffmpeg.version !== undefined && ffmpeg.version === ffprobe.version
  if (!sameBuild && ffmpeg.version && ffprobe.version) {
    notes.push(
      `ffmpeg ${ffmpeg.version}${ffmpeg.year ? ` (${ffmpeg.year})` : ""} and ffprobe ${ffprobe.version}${
        ffprobe.year ? ` (${ffprobe.year})` : ""
      } are different builds`
    )
  }
  return { ffmpeg, ffprobe, sameBuild, notes }
})
