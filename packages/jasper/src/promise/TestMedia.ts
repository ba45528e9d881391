/**
 * Deterministic test media as Promises.
 *
 * @since 0.1.0
 */
import { PromiseRuntime } from "@org/storage"
import * as TestMedia from "../TestMedia.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Fixtures = TestMedia.Fixtures

/**
 * Writes posters, videos with hard cuts, a tone, subtitles and broken files under
 * `dir` (see the Effect `TestMedia.generate`); rejects with `TestMediaError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate = (dir: string): Promise<Fixtures> => PromiseRuntime.run(TestMedia.generate(dir))
