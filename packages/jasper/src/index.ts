/**
 * @org/jasper: standardized media access. Typed entities and content-addressed
 * assets, a catalog with a change feed on `@org/storage`, readers by URI scheme,
 * decoding of images, video, audio and subtitles, the shared time model, derivatives
 * and generated test media.
 *
 * @since 0.1.0
 */
export * as Audio from "./Audio.js"
export * as Catalog from "./Catalog.js"
export * as Derivative from "./Derivative.js"
export * as Image from "./Image.js"
export * as Jasper from "./Jasper.js"
export * as JasperError from "./JasperError.js"
export * as Media from "./Media.js"
export * as Probe from "./Probe.js"
export * as Reader from "./Reader.js"
export * as Subtitles from "./Subtitles.js"
export * as TestMedia from "./TestMedia.js"
export * as Time from "./Time.js"
export * as Video from "./Video.js"
