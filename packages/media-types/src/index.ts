/**
 * The vocabulary the media packages share: the time model (`Time`) and the content-hash type (`ContentHash`).
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as ContentHash from "./ContentHash.js"

/**
 * @since 0.1.0
 */
export * as MediaTypesError from "./MediaTypesError.js"

/**
 * @since 0.1.0
 */
export * as Time from "./Time.js"
