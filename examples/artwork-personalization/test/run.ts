import { spawn } from "node:child_process"

/**
 * Runs a command without blocking the test worker's event loop (a long spawnSync starves vitest's RPC); `onLine`
 * sees each line of its output (stdout and stderr) as it comes.
 */
export const runAsync = (
  command: string,
  args: ReadonlyArray<string>,
  cwd: string,
  onLine?: (line: string) => void
): Promise<{ status: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { cwd })
    let stdout = ""
    let stderr = ""
    const lines = (chunk: string, rest: { text: string }) => {
      if (!onLine) return
      rest.text += chunk
      const parts = rest.text.split("\n")
      rest.text = parts.pop()!
      for (const l of parts) onLine(l)
    }
    const restOut = { text: "" }
    const restErr = { text: "" }
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString("utf8")
      lines(c.toString("utf8"), restOut)
    })
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString("utf8")
      lines(c.toString("utf8"), restErr)
    })
    child.on("error", reject)
    child.on("close", (status) => resolve({ status, stdout, stderr }))
  })
