// A load generator in a worker thread (so it does not share the server's event loop):
// `clients` keep-alive connections, each sending one request after the other for `durationMs`.
import * as http from "node:http"
import { parentPort, workerData } from "node:worker_threads"

const { url, path, bodies, clients, durationMs, token } = workerData
const agent = new http.Agent({ keepAlive: true, maxSockets: clients })
const post = (body) =>
  new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, {
      method: "POST",
      agent,
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body)
      }
    })
    req.on("response", (res) => {
      res.resume()
      res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`${path}: ${res.statusCode}`))))
    })
    req.on("error", reject)
    req.end(body)
  })
const latencies = []
const end = performance.now() + durationMs
const started = performance.now()
await Promise.all(
  Array.from({ length: clients }, async (_, c) => {
    for (let i = c; performance.now() < end; i += clients) {
      const s = performance.now()
      await post(bodies[i % bodies.length])
      latencies.push(performance.now() - s)
    }
  })
)
agent.destroy()
parentPort.postMessage({ latencies, wallMs: performance.now() - started })
