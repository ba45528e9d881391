#!/usr/bin/env node
/**
 * The `amber` command line: `amber plan|run|backfill|trigger|worker|status --config ./amber.config.mjs`.
 *
 * @since 0.1.0
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { main } from "../internal/cli.js"

const version = "0.1.0"

main(process.argv, version).pipe(
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
