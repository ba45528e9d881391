/**
 * Fingerprints made by `Fingerprint.make` (frozen), with the canonical JSON text of
 * their inputs, computed once while hashing.
 */
const texts = new WeakMap<object, string>()

export const remember = (fingerprint: object, inputsJson: string): void => {
  texts.set(fingerprint, inputsJson)
}

/** The canonical inputs text of a fingerprint made by `Fingerprint.make`, if it is one. */
export const inputsText = (fingerprint: object): string | undefined => texts.get(fingerprint)
