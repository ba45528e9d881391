/**
 * The model: media entities (titles, episodes, artworks, trailers, videos, shots,
 * with parent/child relations), assets (content-addressed bytes of one entity in one
 * role) and their probed metadata, and the catalog's change events.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as ContentHash from "@org/media-types/ContentHash"
import * as Time from "./Time.js"

/**
 * The four media types Jasper handles.
 *
 * @since 0.1.0
 * @category schemas
 */
export const MediaType = Schema.Literal("image", "video", "audio", "text")

/**
 * @since 0.1.0
 * @category models
 */
export type MediaType = typeof MediaType.Type

/**
 * An entity kind. Common ones: `title`, `season`, `episode`, `artwork`, `trailer`,
 * `video`, `shot`; any non-empty name is allowed.
 *
 * @since 0.1.0
 * @category schemas
 */
export const EntityKind = Schema.String.pipe(Schema.nonEmptyString(), Schema.maxLength(64))

/**
 * An identifier: 1 to 200 characters without control characters.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Id = Schema.String.pipe(
  Schema.nonEmptyString(),
  Schema.maxLength(200),
  Schema.filter((s) => !/\p{Cc}/u.test(s) || "an id has no control characters")
)

/**
 * JSON-like attribute values kept on entities and asset labels.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Attributes = Schema.Record({
  key: Schema.String,
  value: Schema.Union(Schema.String, Schema.Number, Schema.Boolean, Schema.Null)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Attributes = typeof Attributes.Type

/**
 * A media entity: something that has assets (a title, an episode, an artwork, a
 * trailer, a shot). `parentId` links it to its parent (an episode's season, an
 * artwork's title, a shot's video).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Entity = Schema.Struct({
  id: Id,
  kind: EntityKind,
  title: Schema.optional(Schema.String),
  parentId: Schema.optional(Id),
  attributes: Schema.optionalWith(Attributes, { default: () => ({}) })
})

/**
 * @since 0.1.0
 * @category models
 */
export type Entity = typeof Entity.Type

/**
 * What an entity is given as (attributes optional).
 *
 * @since 0.1.0
 * @category models
 */
export type EntityInput = typeof Entity.Encoded

/**
 * Probed metadata of an image.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ImageMetadata = Schema.TaggedStruct("image", {
  width: Schema.Int,
  height: Schema.Int,
  /** sharp's format name: `jpeg`, `png`, `webp`, ... */
  format: Schema.String,
  /** `srgb`, `b-w`, `cmyk`, ... */
  colorSpace: Schema.String,
  channels: Schema.Int,
  hasAlpha: Schema.Boolean,
  /** The EXIF orientation (1 to 8) when the file has one; 5 to 8 swap width and height on display. */
  orientation: Schema.optional(Schema.Int),
  /** The size as shown (EXIF orientation applied), which `Image.decode` returns by default. */
  displayWidth: Schema.optional(Schema.Int),
  displayHeight: Schema.optional(Schema.Int),
  /** The number of pages or animation frames (GIF, WebP, TIFF) when more than one. */
  pages: Schema.optional(Schema.Int)
})

/**
 * Probed metadata of a video; `frameRate` is exact (e.g. 24000/1001). `width` and
 * `height` are the stored (coded) size; `rotation` is the clockwise turn the display
 * matrix asks for, and `displayWidth`/`displayHeight` the size frames are decoded to
 * by default. Times are on the file's presentation timeline: `startNs` is when the
 * first frame shows (not always 0), `timeBase` the stream's clock tick.
 *
 * @since 0.1.0
 * @category schemas
 */
export const VideoMetadata = Schema.TaggedStruct("video", {
  durationNs: Schema.Int,
  frameRate: Time.RationalSchema,
  width: Schema.Int,
  height: Schema.Int,
  codec: Schema.String,
  /** The number of frames, when the container says so. */
  frameCount: Schema.optional(Schema.Int),
  /** The audio stream, when there is one. */
  audio: Schema.optional(
    Schema.Struct({
      sampleRate: Schema.Int,
      channels: Schema.Int,
      codec: Schema.String,
      /** When the sound track's first sample plays (ns, presentation timeline). */
      startNs: Schema.optional(Schema.Int)
    })
  ),
  /** Clockwise rotation for display: 0, 90, 180 or 270. */
  rotation: Schema.optional(Schema.Literal(0, 90, 180, 270)),
  displayWidth: Schema.optional(Schema.Int),
  displayHeight: Schema.optional(Schema.Int),
  /** When the first frame shows, on the file's presentation timeline (ns). */
  startNs: Schema.optional(Schema.Int),
  /** The container's start time (ns): where `-ss 0` of ffmpeg points, the earliest stream start. */
  containerStartNs: Schema.optional(Schema.Int),
  /** The video stream's time base (seconds per tick). */
  timeBase: Schema.optional(Time.RationalSchema),
  /** False when frames do not follow `frameRate` (variable frame rate): their own timestamps are used. */
  constantRate: Schema.optional(Schema.Boolean),
  /** When the last frame stops showing (ns, on the presentation timeline). */
  endNs: Schema.optional(Schema.Int),
  /** The start timecode (a `tmcd` track or a `timecode` tag), such as `01:00:00:00`. */
  timecode: Schema.optional(Schema.String)
})

/**
 * Probed metadata of an audio file.
 *
 * @since 0.1.0
 * @category schemas
 */
export const AudioMetadata = Schema.TaggedStruct("audio", {
  durationNs: Schema.Int,
  sampleRate: Schema.Int,
  channels: Schema.Int,
  codec: Schema.String,
  /** When the first sample plays, on the file's presentation timeline (ns). */
  startNs: Schema.optional(Schema.Int),
  /** The container's start time (ns): where `-ss 0` of ffmpeg points. */
  containerStartNs: Schema.optional(Schema.Int)
})

/**
 * Probed metadata of a text asset (subtitles).
 *
 * @since 0.1.0
 * @category schemas
 */
export const TextMetadata = Schema.TaggedStruct("text", {
  format: Schema.Literal("srt", "vtt", "plain"),
  language: Schema.optional(Schema.String),
  cues: Schema.Int
})

/**
 * Probed metadata of any asset; `_tag` is its media type.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Metadata = Schema.Union(ImageMetadata, VideoMetadata, AudioMetadata, TextMetadata)

/**
 * @since 0.1.0
 * @category models
 */
export type Metadata = typeof Metadata.Type

/**
 * @since 0.1.0
 * @category models
 */
export type ImageMetadata = typeof ImageMetadata.Type

/**
 * @since 0.1.0
 * @category models
 */
export type VideoMetadata = typeof VideoMetadata.Type

/**
 * @since 0.1.0
 * @category models
 */
export type AudioMetadata = typeof AudioMetadata.Type

/**
 * @since 0.1.0
 * @category models
 */
export type TextMetadata = typeof TextMetadata.Type

/**
 * The size an image or video is shown at: its display size when probed, else the
 * stored one.
 *
 * @since 0.2.0
 * @category helpers
 */
export const displaySize = (
  metadata: ImageMetadata | VideoMetadata
): { readonly width: number; readonly height: number } => ({
  width: metadata.displayWidth ?? metadata.width,
  height: metadata.displayHeight ?? metadata.height
})

/**
 * A lowercase hex sha256: `@org/media-types`'s `ContentHash` schema.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Sha256 = ContentHash.ContentHash

/**
 * An asset: one version of the bytes of an entity in a role (`poster`, `source`,
 * `trailer`, `subtitles:en`). Its identity is its content (`sha256`): new content
 * under the same entity and role is a new `version`; labels are metadata only and
 * never change identity.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Asset = Schema.Struct({
  id: Id,
  entityId: Id,
  role: Id,
  version: Schema.Int.pipe(Schema.positive()),
  mediaType: MediaType,
  uri: Schema.String,
  sha256: Sha256,
  byteSize: Schema.Int.pipe(Schema.nonNegative()),
  metadata: Metadata,
  labels: Attributes,
  createdAtMs: Schema.Int,
  updatedAtMs: Schema.Int
})

/**
 * @since 0.1.0
 * @category models
 */
export type Asset = typeof Asset.Type

/**
 * What the change feed records: a first asset under an entity and role (`added`),
 * new content under an existing entity and role (`changed`: a new version), or a
 * metadata-only update (`metadata`: same content, nothing to recompute).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChangeKind = Schema.Literal("added", "changed", "metadata")

/**
 * One event of the change feed, at position `seq` (strictly increasing, durable).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Change = Schema.Struct({
  seq: Schema.Int,
  kind: ChangeKind,
  assetId: Id,
  entityId: Id,
  role: Id,
  version: Schema.Int,
  sha256: Sha256,
  atMs: Schema.Int
})

/**
 * @since 0.1.0
 * @category models
 */
export type Change = typeof Change.Type

/**
 * A request to register an asset. `mediaType` is inferred from the URI's file
 * extension when absent; `language` is kept for text assets.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Registration = Schema.Struct({
  entityId: Id,
  role: Id,
  uri: Schema.String.pipe(Schema.nonEmptyString()),
  mediaType: Schema.optional(MediaType),
  language: Schema.optional(Schema.String),
  labels: Schema.optionalWith(Attributes, { default: () => ({}) })
})

/**
 * @since 0.1.0
 * @category models
 */
export type Registration = typeof Registration.Encoded

const extensions: Record<string, MediaType> = {
  jpg: "image",
  jpeg: "image",
  png: "image",
  webp: "image",
  gif: "image",
  tif: "image",
  tiff: "image",
  avif: "image",
  heic: "image",
  svg: "image",
  mp4: "video",
  m4v: "video",
  mov: "video",
  mkv: "video",
  webm: "video",
  avi: "video",
  mpg: "video",
  mpeg: "video",
  ts: "video",
  mxf: "video",
  wav: "audio",
  mp3: "audio",
  aac: "audio",
  m4a: "audio",
  flac: "audio",
  ogg: "audio",
  opus: "audio",
  srt: "text",
  vtt: "text",
  txt: "text"
}

/**
 * The media type a URI's or path's file extension suggests, if any.
 *
 * @since 0.1.0
 * @category helpers
 */
export const mediaTypeOf = (uriOrPath: string): MediaType | undefined => {
  const clean = uriOrPath.split(/[?#]/)[0]!
  const dot = clean.lastIndexOf(".")
  if (dot < 0 || dot < clean.lastIndexOf("/")) return undefined
  return extensions[clean.slice(dot + 1).toLowerCase()]
}
