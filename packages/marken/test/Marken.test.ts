// One test file (one process) for the package: the suites share PostgreSQL and a
// machine of two cores, so they run one after another.
import "./Annotations.suite.js"
import "./Search.suite.js"
import "./Http.suite.js"
import "./Contract.suite.js"
import "./Runs.suite.js"
import "./Packaging.suite.js"
import "./PayloadIndex.suite.js"
import "./Serve.suite.js"
import "./QueryPlan.suite.js"
