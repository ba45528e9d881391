/**
 * The synthetic world, generated deterministically from a seed (no downloads): titles in genres, artwork candidates
 * drawn from SVG with sharp, trailers with real cuts made by ffmpeg, subtitles, and members with hidden tastes whose
 * plays make an exploration log (the artwork shown drawn uniformly at random, with its propensity).
 *
 * The hidden parts (each artwork's visual attributes, each member's taste vector, the play model) are used only to
 * simulate plays; the pipeline sees pixels, the catalog and the logs.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import sharp from "sharp"
import { type JasperError, TestMedia } from "@org/jasper"
import { rng } from "./random.js"

export const GENRES = ["drama", "comedy", "thriller", "sci-fi", "romance", "documentary"] as const

/** Hidden visual attributes of an artwork, each in [-1, 1]: what members' tastes are about. */
export const ATTRIBUTES = ["warm", "bright", "saturated", "close-up", "group", "big-text"] as const

export interface Title {
  readonly id: string
  readonly name: string
  readonly genre: string
  /** Held out of training entirely (cold start). */
  readonly cold: boolean
  /** Hidden appeal of the title (shifts the play probability of every artwork). */
  readonly appeal: number
}

export interface Artwork {
  readonly id: string
  readonly title: string
  readonly file: string
  /** Hidden: values of {@link ATTRIBUTES}. */
  readonly attributes: ReadonlyArray<number>
}

export interface Video {
  readonly id: string
  readonly title: string
  readonly file: string
  readonly subtitles: string
  /** The lavfi sources of its shots, in order. */
  readonly scenes: ReadonlyArray<string>
}

export interface Impression {
  readonly member: number
  readonly title: number
  /** Index into the title's artworks. */
  readonly artwork: number
  /** The probability that the logging policy showed this artwork (uniform: 1 / candidates). */
  readonly propensity: number
  readonly played: boolean
  /** When, in [0, 1). */
  readonly time: number
}

export interface World {
  readonly seed: number
  readonly titles: ReadonlyArray<Title>
  /** Artworks of each title, in title order. */
  readonly artworks: ReadonlyArray<ReadonlyArray<Artwork>>
  readonly videos: ReadonlyArray<Video>
  readonly members: number
  /** Hidden taste vectors (members x ATTRIBUTES), and the archetype each was drawn around. */
  readonly tastes: ReadonlyArray<ReadonlyArray<number>>
  readonly archetypes: ReadonlyArray<number>
  /** Impressions before the split time on warm titles. */
  readonly train: ReadonlyArray<Impression>
  /** Impressions after the split time on warm titles. */
  readonly heldOut: ReadonlyArray<Impression>
  /** Every impression of cold-start titles (never used for training). */
  readonly cold: ReadonlyArray<Impression>
  /** The hidden play probability. */
  readonly playProbability: (member: number, title: number, artwork: number) => number
}

export interface Options {
  readonly seed: number
  readonly titles: number
  readonly members: number
  /** Impressions per member (default 20). */
  readonly impressionsPerMember?: number
  /** Share of titles held out entirely (default 1/6). */
  readonly coldShare?: number
  /** Split time between the train and held-out logs (default 0.7). */
  readonly split?: number
  /** Folder of the generated media (reused when the files exist). */
  readonly mediaDir: string
  /** Make trailers (default true). */
  readonly trailers?: boolean
}

const WORDS_A = ["Night", "Paper", "Last", "Silent", "Copper", "Glass", "Northern", "Salt", "Quiet", "Blue", "Lantern"]
const ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"]
const WORDS_B = ["Harbor", "Moons", "Orchard", "Signal", "Coast", "Garden", "Engines", "Hour", "Street", "Bloom"]

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x))

/** A standard normal draw from a uniform generator (Box-Muller). */
const normal = (random: () => number) => {
  const u = Math.max(random(), 1e-12)
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random())
}

const clamp = (x: number) => Math.max(-1, Math.min(1, x))

/** The genre's tendency on each attribute (titles of a genre look alike, but not identical). */
const genreBias = (random: () => number) => ATTRIBUTES.map(() => 0.5 * normal(random))

const escapeXml = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!)

/** Draws an artwork's SVG from its attributes: palette (warm, bright, saturated), composition, figures, title text. */
export const artworkSvg = (name: string, a: ReadonlyArray<number>, variant: number): string => {
  const [warm, bright, saturated, closeUp, group, bigText] = a as [number, number, number, number, number, number]
  const w = 120
  const h = 180
  const hue = warm > 0 ? 10 + 40 * (1 - warm) : 200 + 40 * -warm
  const sat = 35 + 30 * saturated
  const light = 40 + 22 * bright
  const side = [0.3, 0.5, 0.7][variant % 3]!
  const bg = `<defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="hsl(${hue.toFixed(0)},${sat.toFixed(0)}%,${(light - 15).toFixed(0)}%)"/><stop offset="1" stop-color="hsl(${((hue + 30) % 360).toFixed(0)},${sat.toFixed(0)}%,${(light + 10).toFixed(0)}%)"/></linearGradient></defs><rect width="100%" height="100%" fill="url(#g)"/>`
  const figure = bright > 0 ? "#1d1d28" : "#f1e6d2"
  let body = ""
  if (closeUp > 0.2) {
    // one large face and shoulders
    const cx = side * w
    body = `<ellipse cx="${cx}" cy="${h * 0.42}" rx="${w * 0.22}" ry="${h * 0.17}" fill="${figure}"/><path d="M ${cx - w * 0.42} ${h} Q ${cx} ${h * 0.5} ${cx + w * 0.42} ${h} Z" fill="${figure}"/>`
  } else if (group > 0.2) {
    // several small figures
    const n = 3 + (variant % 3)
    for (let i = 0; i < n; i++) {
      const x = ((i + 0.5) / n) * w
      const y = h * (0.5 + 0.08 * ((i + variant) % 2))
      body += `<circle cx="${x}" cy="${y}" r="${w * 0.06}" fill="${figure}"/><rect x="${x - w * 0.06}" y="${y + w * 0.07}" width="${w * 0.12}" height="${h * 0.18}" fill="${figure}"/>`
    }
  } else {
    // a landscape: sun and hills, no figures
    body = `<circle cx="${side * w}" cy="${h * 0.3}" r="${w * 0.12}" fill="hsl(${(hue + 180) % 360},80%,75%)"/><ellipse cx="${w * 0.3}" cy="${h * 0.85}" rx="${w * 0.6}" ry="${h * 0.2}" fill="hsl(${hue.toFixed(0)},30%,${(light - 25).toFixed(0)}%)"/><ellipse cx="${w * 0.8}" cy="${h * 0.9}" rx="${w * 0.5}" ry="${h * 0.18}" fill="hsl(${hue.toFixed(0)},30%,${(light - 30).toFixed(0)}%)"/>`
  }
  const size = bigText > 0 ? 17 : 9
  const band =
    bigText > 0 ? `<rect x="0" y="${h * 0.8}" width="${w}" height="${h * 0.2}" fill="#000" fill-opacity="0.45"/>` : ""
  const text = `<text x="${w / 2}" y="${h * (bigText > 0 ? 0.93 : 0.95)}" font-family="sans-serif" font-weight="bold" font-size="${size}" fill="#fff" text-anchor="middle">${escapeXml(name)}</text>`
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${bg}${body}${band}${text}</svg>`
}

/** Lavfi sources the trailers cut between: shared across trailers, so some shots of different trailers match. */
const SCENES = [
  "testsrc",
  "testsrc2",
  "smptebars",
  "rgbtestsrc",
  "color=c=0x1f3a5f",
  "color=c=0xc8553d",
  "color=c=0xf2d0a4",
  "color=c=0x2d3047",
  "color=c=0x588b8b",
  "color=c=0xffd5c2"
]

const srt = (name: string) =>
  `1\n00:00:00,200 --> 00:00:01,500\n${name}\n\n2\n00:00:02,000 --> 00:00:03,200\nComing soon.\n`

/** Makes a small trailer cutting between lavfi sources (kept when the file exists; written whole or not at all). */
export const trailer = (file: string, scenes: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    if (fs.existsSync(file)) return file
    const tmp = `${file}.part.mp4`
    yield* TestMedia.video(tmp, {
      width: 96,
      height: 64,
      rate: "12/1",
      segments: scenes,
      segmentFrames: 12,
      preset: "ultrafast"
    })
    fs.renameSync(tmp, file)
    return file
  })

/**
 * Title names are unique: a repeated draw becomes a sequel ("Salt Hour II"), without drawing again, so the rest of the
 * world stays the same for a seed.
 */
export const uniqueName = (seen: Map<string, number>, drawn: string): string => {
  const sequel = (seen.get(drawn) ?? 0) + 1
  seen.set(drawn, sequel)
  const name = sequel === 1 ? drawn : `${drawn} ${ROMAN[sequel - 1] ?? sequel}`
  return name
}

/** Generates (or reuses) the media and simulates the members and their exploration log. */
export const generate = (options: Options): Effect.Effect<World, JasperError.TestMediaError | Error> =>
  Effect.gen(function* () {
    const random = rng(options.seed * 7919 + 17)
    const perMember = options.impressionsPerMember ?? 20
    const split = options.split ?? 0.7
    const coldEvery = Math.max(2, Math.round(1 / (options.coldShare ?? 1 / 6)))
    fs.mkdirSync(options.mediaDir, { recursive: true })
    const genreBiases = GENRES.map(() => genreBias(random))
    const titles: Array<Title> = []
    const artworks: Array<Array<Artwork>> = []
    const videos: Array<Video> = []
    const seen = new Map<string, number>()
    for (let t = 0; t < options.titles; t++) {
      const genre = t % GENRES.length
      const id = `title-${String(t + 1).padStart(3, "0")}`
      const drawn = `${WORDS_A[Math.floor(random() * WORDS_A.length)]} ${WORDS_B[Math.floor(random() * WORDS_B.length)]}`
      const name = uniqueName(seen, drawn)
      titles.push({
        id,
        name,
        genre: GENRES[genre]!,
        cold: t % coldEvery === coldEvery - 1,
        appeal: 0.4 * normal(random)
      })
      const count = 5 + Math.floor(random() * 4)
      const list: Array<Artwork> = []
      for (let k = 0; k < count; k++) {
        const attributes = ATTRIBUTES.map((_, d) => clamp(genreBiases[genre]![d]! + 0.8 * normal(random)))
        list.push({
          id: `${id}-art-${k + 1}`,
          title: id,
          file: path.join(options.mediaDir, `${id}-art-${k + 1}.jpg`),
          attributes
        })
      }
      artworks.push(list)
      const scenes = Array.from({ length: 4 }, () => SCENES[Math.floor(random() * SCENES.length)]!)
      // consecutive shots differ, so every boundary is a real cut
      for (let i = 1; i < scenes.length; i++)
        if (scenes[i] === scenes[i - 1]) scenes[i] = SCENES[(SCENES.indexOf(scenes[i]!) + 1) % SCENES.length]!
      videos.push({
        id: `${id}-trailer`,
        title: id,
        file: path.join(options.mediaDir, `${id}-trailer.mp4`),
        subtitles: path.join(options.mediaDir, `${id}-trailer.srt`),
        scenes
      })
    }
    // media: drawn once, reused while the files exist
    yield* Effect.forEach(
      artworks.flat(),
      (a, i) =>
        fs.existsSync(a.file)
          ? Effect.void
          : Effect.tryPromise({
              try: () =>
                sharp(Buffer.from(artworkSvg(titles.find((t) => t.id === a.title)!.name, a.attributes, i)))
                  .jpeg({ quality: 85 })
                  .toFile(a.file),
              catch: (cause) => new Error(`drawing ${a.file} failed: ${String(cause)}`)
            }),
      { concurrency: 4, discard: true }
    )
    if (options.trailers !== false) {
      yield* Effect.forEach(
        videos,
        (v) =>
          Effect.gen(function* () {
            if (!fs.existsSync(v.subtitles))
              fs.writeFileSync(v.subtitles, srt(titles.find((t) => t.id === v.title)!.name))
            yield* trailer(v.file, v.scenes)
          }),
        { concurrency: 2, discard: true }
      )
    }
    // members: a taste vector around one of a few archetypes
    const archetypeCount = 6
    const centers = Array.from({ length: archetypeCount }, () => ATTRIBUTES.map(() => normal(random)))
    const tastes: Array<Array<number>> = []
    const archetypes: Array<number> = []
    for (let m = 0; m < options.members; m++) {
      const c = Math.floor(random() * archetypeCount)
      archetypes.push(c)
      tastes.push(centers[c]!.map((x) => x + 0.6 * normal(random)))
    }
    const playProbability = (m: number, t: number, k: number) => {
      const a = artworks[t]![k]!.attributes
      const taste = tastes[m]!
      let u = 0
      for (let d = 0; d < a.length; d++) u += taste[d]! * a[d]!
      return sigmoid(-1 + titles[t]!.appeal + (1.5 * u) / Math.sqrt(a.length))
    }
    // the exploration log: a random title, a uniformly random artwork of it, played or not
    const train: Array<Impression> = []
    const heldOut: Array<Impression> = []
    const cold: Array<Impression> = []
    for (let m = 0; m < options.members; m++) {
      for (let i = 0; i < perMember; i++) {
        const t = Math.floor(random() * titles.length)
        const candidates = artworks[t]!.length
        const k = Math.floor(random() * candidates)
        const impression: Impression = {
          member: m,
          title: t,
          artwork: k,
          propensity: 1 / candidates,
          played: random() < playProbability(m, t, k),
          time: random()
        }
        if (titles[t]!.cold) cold.push(impression)
        else if (impression.time < split) train.push(impression)
        else heldOut.push(impression)
      }
    }
    const byTime = (a: Impression, b: Impression) => a.time - b.time
    return {
      seed: options.seed,
      titles,
      artworks,
      videos,
      members: options.members,
      tastes,
      archetypes,
      train: train.sort(byTime),
      heldOut: heldOut.sort(byTime),
      cold: cold.sort(byTime),
      playProbability
    }
  })
