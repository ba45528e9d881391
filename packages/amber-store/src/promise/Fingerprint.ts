/**
 * Fingerprints for the Promise API: {@link make} resolves to the fingerprint or
 * rejects with `FingerprintError`.
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import * as Fp from "../Fingerprint.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Fingerprint = Fp.Fingerprint

/**
 * @since 0.1.0
 * @category models
 */
export type Inputs = Fp.Inputs

/**
 * The fingerprint of what a value is computed from (see the Effect `Fingerprint.make`);
 * rejects with `FingerprintError` for inputs that cannot be hashed canonically.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (inputs: Inputs): Promise<Fingerprint> =>
  Either.match(Fp.either(inputs), { onLeft: (e) => Promise.reject(e), onRight: (fp) => Promise.resolve(fp) })

/**
 * The reference to an upstream value, to list in another value's `upstream` inputs.
 *
 * @since 0.1.0
 * @category constructors
 */
export const upstream = Fp.upstream
