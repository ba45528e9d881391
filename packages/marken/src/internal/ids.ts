import { randomBytes } from "node:crypto"

let lastMs = 0
let counter = 0

/**
 * A UUIDv7: 48 bits of milliseconds then a 12-bit counter (monotonic within a
 * millisecond in this process) and random bits, so ids sort by creation time.
 */
export const uuidv7 = (now: number): string => {
  if (now <= lastMs) {
    counter++
    if (counter > 0xfff) {
      lastMs++
      counter = 0
    }
    now = lastMs
  } else {
    lastMs = now
    counter = 0
  }
  const bytes = randomBytes(16)
  bytes[0] = Math.floor(now / 2 ** 40) & 0xff
  bytes[1] = Math.floor(now / 2 ** 32) & 0xff
  bytes[2] = (now >>> 24) & 0xff
  bytes[3] = (now >>> 16) & 0xff
  bytes[4] = (now >>> 8) & 0xff
  bytes[5] = now & 0xff
  bytes[6] = 0x70 | ((counter >>> 8) & 0x0f)
  bytes[7] = counter & 0xff
  bytes[8] = 0x80 | (bytes[8]! & 0x3f)
  const hex = bytes.toString("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}
