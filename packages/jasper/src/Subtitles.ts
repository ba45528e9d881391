/**
 * Subtitles: SRT and WebVTT files into cues with integer-nanosecond times.
 *
 * @since 0.1.0
 */
import { Effect, Either } from "effect"
import { DecodeError, type ReadError, SubtitleError } from "./JasperError.js"
import * as Reader from "./Reader.js"

/**
 * One cue: `[startNs, endNs)`, its `text` as written in the file (lines joined with
 * `\n`, markup such as `<i>`, `<v Narrator>` and entities such as `&amp;` kept) and
 * its `plain` text (tags and `{\...}` overrides removed, entities decoded).
 *
 * @since 0.1.0
 * @category models
 */
export interface Cue {
  readonly index: number
  readonly id?: string
  readonly startNs: number
  readonly endNs: number
  readonly text: string
  readonly plain: string
}

const ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
  lrm: "\u200e",
  rlm: "\u200f"
}

/**
 * The plain text of cue markup: WebVTT/SRT tags (`<i>`, `<b>`, `<v Narrator>`,
 * `<c.loud>`, `<00:01.000>`, `<font ...>`) and `{\an8}`-style overrides removed,
 * character references (`&amp;`, `&#233;`, `&#xE9;`) decoded.
 *
 * @since 0.2.0
 * @category parsing
 */
export const plainText = (text: string): string =>
  text
    .replace(/<[^>\n]*>/g, "")
    .replace(/\{\\[^}\n]*\}/g, "")
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (all, name: string) => {
      if (name[0] === "#") {
        const code = name[1] === "x" || name[1] === "X" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10)
        return Number.isFinite(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : all
      }
      return ENTITIES[name.toLowerCase()] ?? all
    })

/**
 * The subtitle formats understood.
 *
 * @since 0.1.0
 * @category models
 */
export type Format = "srt" | "vtt"

const TIME = /^(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{3})$/

const parseTime = (text: string): number | undefined => {
  const m = TIME.exec(text.trim())
  if (!m) return undefined
  const [h, mi, s, ms] = [Number(m[1] ?? 0), Number(m[2]), Number(m[3]), Number(m[4])]
  if (mi > 59 || s > 59) return undefined
  return (((h * 60 + mi) * 60 + s) * 1000 + ms) * 1_000_000
}

const lines = (text: string) =>
  text
    .replace(/^\uFEFF/, "")
    .replace(/\r\n?/g, "\n")
    .split("\n")

const timing = (line: string, uri: string, lineNo: number): Either.Either<[number, number], SubtitleError> => {
  const m = /^\s*(\S+)\s+-->\s+(\S+)(?:\s+.*)?$/.exec(line)
  const fail = (message: string) =>
    Either.left(new SubtitleError({ uri, line: lineNo, message: `${uri}:${lineNo}: ${message}` }))
  if (!m) return fail(`expected a timing line "start --> end", got "${line.slice(0, 80)}"`)
  const start = parseTime(m[1]!)
  const end = parseTime(m[2]!)
  if (start === undefined) return fail(`"${m[1]}" is not a time`)
  if (end === undefined) return fail(`"${m[2]}" is not a time`)
  if (end < start) return fail(`cue ends (${m[2]}) before it starts (${m[1]})`)
  return Either.right([start, end])
}

/**
 * Parses the blank-line separated cue blocks from line `from` on: an optional id
 * line, a timing line, then text lines. Blocks for which `skip` holds are ignored.
 */
const parseCues = (
  ls: ReadonlyArray<string>,
  from: number,
  uri: string,
  skip: (line: string) => boolean = () => false
): Either.Either<ReadonlyArray<Cue>, SubtitleError> => {
  const cues: Array<Cue> = []
  let i = from
  while (i < ls.length) {
    while (i < ls.length && ls[i]!.trim() === "") i++
    if (i >= ls.length) break
    if (skip(ls[i]!)) {
      while (i < ls.length && ls[i]!.trim() !== "") i++
      continue
    }
    let id: string | undefined
    if (!ls[i]!.includes("-->")) {
      id = ls[i]!.trim()
      i++
    }
    const t = timing(ls[i] ?? "", uri, i + 1)
    if (Either.isLeft(t)) return Either.left(t.left)
    i++
    const body: Array<string> = []
    while (i < ls.length && ls[i]!.trim() !== "") body.push(ls[i++]!)
    cues.push({
      index: cues.length,
      ...(id !== undefined ? { id } : {}),
      startNs: t.right[0],
      endNs: t.right[1],
      text: body.join("\n"),
      plain: plainText(body.join("\n"))
    })
  }
  return Either.right(cues)
}

/**
 * Parses SRT text. `uri` is used in error messages.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseSrt = (text: string, uri = "<srt>"): Either.Either<ReadonlyArray<Cue>, SubtitleError> =>
  parseCues(lines(text), 0, uri)

/**
 * Parses WebVTT text (NOTE, STYLE and REGION blocks are skipped; cue settings are ignored).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseVtt = (text: string, uri = "<vtt>"): Either.Either<ReadonlyArray<Cue>, SubtitleError> => {
  const ls = lines(text)
  if (!/^WEBVTT(?:[ \t].*)?$/.test(ls[0] ?? "")) {
    return Either.left(new SubtitleError({ uri, line: 1, message: `${uri}:1: a WebVTT file starts with "WEBVTT"` }))
  }
  let i = 1
  while (i < ls.length && ls[i]!.trim() !== "") i++ // header
  return parseCues(ls, i, uri, (line) => /^(NOTE|STYLE|REGION)(\s|$)/.test(line))
}

/**
 * The format of subtitle text: by the URI's extension, else by its content.
 *
 * @since 0.1.0
 * @category parsing
 */
export const detect = (text: string, uri?: string): Format | "plain" => {
  const ext = uri?.split(/[?#]/)[0]!.toLowerCase()
  if (ext?.endsWith(".vtt")) return "vtt"
  if (ext?.endsWith(".srt")) return "srt"
  const first = text.replace(/^\uFEFF/, "").trimStart()
  if (first.startsWith("WEBVTT")) return "vtt"
  if (/-->/.test(first)) return "srt"
  return "plain"
}

/**
 * Parses subtitle text in the given (or detected) format.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (
  text: string,
  options: { readonly format?: Format; readonly uri?: string } = {}
): Either.Either<ReadonlyArray<Cue>, SubtitleError> => {
  const uri = options.uri ?? "<text>"
  const format = options.format ?? detect(text, options.uri)
  if (format === "plain") {
    return Either.left(new SubtitleError({ uri, line: 1, message: `${uri}: neither SRT nor WebVTT` }))
  }
  return format === "vtt" ? parseVtt(text, uri) : parseSrt(text, uri)
}

/**
 * Decodes bytes as UTF-8 text, failing with a `DecodeError` on an empty file or invalid UTF-8.
 *
 * @since 0.1.0
 * @category decoding
 */
export const text = (bytes: Uint8Array, uri: string, assetId?: string): Either.Either<string, DecodeError> => {
  const fail = (message: string, cause?: unknown) =>
    Either.left(
      new DecodeError({
        uri,
        media: "text",
        stage: "decode",
        message: `${uri}: ${message}`,
        ...(assetId ? { assetId } : {}),
        cause
      })
    )
  if (bytes.byteLength === 0) return fail("empty file")
  try {
    return Either.right(new TextDecoder("utf-8", { fatal: true }).decode(bytes))
  } catch (cause) {
    return fail("not UTF-8 text", cause)
  }
}

/**
 * Reads a subtitle source (file, http, memory or an asset) and parses its cues.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (
  source: Reader.Source,
  options: { readonly format?: Format; readonly maxBytes?: number } = {}
): Effect.Effect<ReadonlyArray<Cue>, ReadError | DecodeError | SubtitleError, Reader.Reader> =>
  Effect.gen(function* () {
    const reader = yield* Reader.Reader
    const read = yield* reader.read(source, { maxBytes: options.maxBytes ?? 32 * 1024 * 1024 })
    const body = yield* text(read.bytes, read.uri, Reader.assetIdOf(source))
    return yield* parse(body, { uri: read.uri, ...(options.format ? { format: options.format } : {}) })
  })
