// One test file (one process) for the whole package: the suites share PostgreSQL, and
// `Database.migrate` looks for its migration table in every schema (kysely's
// introspection), so two files migrating @org/marken in different schemas at once
// would see each other's tables. Run in one file, the suites run one after another.
import "./Annotations.suite.js"
import "./Search.suite.js"
import "./Http.suite.js"
