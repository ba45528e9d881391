/**
 * Audio decoding with ffmpeg: Float32 PCM at a chosen sample rate, mono or per
 * channel, streamed in chunks. Interrupting the stream kills its ffmpeg.
 *
 * @since 0.1.0
 */
import { Effect, Stream } from "effect"
import * as Process from "./internal/process.js"
import { DecodeError, InvalidInputError, type ReadError, type UnsupportedMediaError } from "./JasperError.js"
import type { AudioMetadata } from "./Media.js"
import * as Probe from "./Probe.js"
import * as Reader from "./Reader.js"
import * as Time from "./Time.js"

/**
 * A chunk of samples: one `Float32Array` per channel (one for mono), `frames`
 * samples each, starting at `startNs`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Chunk {
  readonly index: number
  readonly startNs: number
  readonly sampleRate: number
  readonly frames: number
  readonly channels: ReadonlyArray<Float32Array>
}

/**
 * Options of {@link pcm}: sample rate (default the source's), `mono` (default
 * true: channels mixed down; false: one array per source channel), samples per
 * chunk (default one second), and a time range.
 *
 * @since 0.1.0
 * @category models
 */
export interface PcmOptions {
  readonly sampleRate?: number
  readonly mono?: boolean
  readonly chunkFrames?: number
  readonly range?: Time.TimeRange
}

/**
 * Errors of the audio functions.
 *
 * @since 0.1.0
 * @category models
 */
export type AudioError = ReadError | DecodeError | UnsupportedMediaError | InvalidInputError

interface Label {
  readonly uri: string
  readonly assetId?: string | undefined
}

const toFloat32 = (piece: Buffer, channels: number): ReadonlyArray<Float32Array> => {
  const all = new Float32Array(piece.length >>> 2)
  new Uint8Array(all.buffer).set(piece.subarray(0, all.length * 4))
  if (channels === 1) return [all]
  const frames = Math.floor(all.length / channels)
  const planes = Array.from({ length: channels }, () => new Float32Array(frames))
  for (let i = 0, s = 0; i < frames; i++) for (let c = 0; c < channels; c++) planes[c]![i] = all[s++]!
  return planes
}

/**
 * Streams PCM from a local file whose audio metadata is known.
 *
 * @since 0.1.0
 * @category decoding
 */
export const pcmFromFile = (
  file: string,
  meta: AudioMetadata,
  options: PcmOptions = {},
  label: Label = { uri: file }
): Stream.Stream<Chunk, DecodeError | InvalidInputError> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const fail = (message: string, cause?: unknown) =>
        new DecodeError({
          uri: label.uri,
          media: "audio",
          stage: "decode",
          message: `${label.uri}${label.assetId ? ` (asset ${label.assetId})` : ""}: ${message}`,
          ...(label.assetId ? { assetId: label.assetId } : {}),
          ...(cause !== undefined ? { cause } : {})
        })
      const sampleRate = options.sampleRate ?? meta.sampleRate
      const chunkFrames = options.chunkFrames ?? sampleRate
      for (const [name, v] of [
        ["sampleRate", sampleRate],
        ["chunkFrames", chunkFrames]
      ] as const) {
        if (!Number.isSafeInteger(v) || v <= 0) {
          return yield* new InvalidInputError({
            subject: "Audio options",
            message: `${name} ${v} is not a positive integer`
          })
        }
      }
      const channels = options.mono === false ? meta.channels : 1
      const bin = yield* Effect.mapError(Process.ffmpeg, (e) => fail(e.message, e))
      const range = options.range
      // times on the presentation timeline: the first sample plays at the stream's start;
      // ffmpeg's -ss counts from the container's start
      const audioStart = meta.startNs ?? 0
      const containerStart = meta.containerStartNs ?? 0
      const startNs = range ? Math.max(range.startNs, audioStart) : audioStart
      const rate = { num: sampleRate, den: 1 }
      return Process.stream({
        command: bin,
        args: [
          "-nostdin",
          "-hide_banner",
          "-loglevel",
          "error",
          ...(range ? ["-ss", Time.formatSeconds(Math.max(0, startNs - containerStart))] : []),
          "-i",
          file,
          ...(range ? ["-t", Time.formatSeconds(Math.max(0, range.endNs - startNs))] : []),
          "-vn",
          "-sn",
          "-ac",
          String(channels),
          "-ar",
          String(sampleRate),
          "-f",
          "f32le",
          "-acodec",
          "pcm_f32le",
          "pipe:1"
        ],
        pieceBytes: chunkFrames * channels * 4,
        keepPartial: true,
        onFailure: (exit) => fail(`ffmpeg failed: ${Process.summarize(exit.stderr)}`)
      }).pipe(
        Stream.zipWithIndex,
        Stream.map(([piece, index]) => {
          const planes = toFloat32(piece, channels)
          return {
            index,
            startNs: startNs + Time.frameToNs(index * chunkFrames, rate),
            sampleRate,
            frames: planes[0]!.length,
            channels: planes
          }
        })
      )
    })
  )

/** An asset's probed audio metadata (or its video's sound track), so that decoding it skips ffprobe. */
const knownAudio = (source: Reader.Source): AudioMetadata | undefined => {
  const m = typeof source === "string" ? undefined : (source as { metadata?: any }).metadata
  if (m?._tag === "audio") return m as AudioMetadata
  if (m?._tag === "video" && m.audio) {
    return {
      _tag: "audio",
      durationNs: m.durationNs,
      ...m.audio,
      ...(m.containerStartNs !== undefined ? { containerStartNs: m.containerStartNs } : {})
    }
  }
  return undefined
}

/**
 * Streams the audio of a source (an audio file or a video's sound track) as Float32 PCM chunks.
 *
 * @example
 * ```ts
 * const chunks = yield* Stream.runCollect(Audio.pcm(asset, { sampleRate: 16_000 }))
 * ```
 * @since 0.1.0
 * @category decoding
 */
export const pcm = (source: Reader.Source, options: PcmOptions = {}): Stream.Stream<Chunk, AudioError, Reader.Reader> =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const reader = yield* Reader.Reader
      const label = { uri: Reader.uriOf(source), assetId: Reader.assetIdOf(source) }
      const file = yield* reader.localPath(source)
      const meta = knownAudio(source) ?? (yield* Probe.audio(file, label))
      return pcmFromFile(file, meta, options, label)
    })
  )
