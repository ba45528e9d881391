import { packageConfig } from "../../tsup.base.js"

export default packageConfig(["src/index.ts", "src/client.ts", "src/promise.ts", "src/bin/marken.ts"])
