import { spawn } from "node:child_process"

/** Runs a command without blocking the test worker's event loop (a long spawnSync starves vitest's RPC). */
export const runAsync = (
  command: string,
  args: ReadonlyArray<string>,
  cwd: string
): Promise<{ status: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { cwd })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")))
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")))
    child.on("error", reject)
    child.on("close", (status) => resolve({ status, stdout, stderr }))
  })
