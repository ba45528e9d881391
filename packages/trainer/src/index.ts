/**
 * @org/trainer (work in progress).
 *
 * @since 0.0.0
 */
export {}
