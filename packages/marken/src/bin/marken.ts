#!/usr/bin/env node
/**
 * The `marken` command line: `marken serve|query|search|types`.
 *
 * @since 0.3.0
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { main } from "../internal/cli.js"

const version = "0.3.0"

main(process.argv, version).pipe(
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
