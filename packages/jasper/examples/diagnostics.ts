/**
 * Which ffmpeg and ffprobe Jasper uses, their versions and build years, and why.
 * Run: npx tsx diagnostics.ts
 */
import { Effect } from "effect"
import { Jasper } from "@org/jasper"

Effect.runPromise(Jasper.diagnostics).then((d) => console.log(d))
// { ffmpeg: { path: "/usr/bin/ffmpeg", source: "path", version: "5.1.9-0+deb12u1", year: 2026 }, ffprobe: {...}, sameBuild: true, notes: [] }
