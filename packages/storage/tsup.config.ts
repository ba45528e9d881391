import { packageConfig } from "../../tsup.base.js"

export default packageConfig(["src/index.ts", "src/sqlite.ts", "src/pg.ts", "src/testing.ts"])
