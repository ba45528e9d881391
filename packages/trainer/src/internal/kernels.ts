/**
 * WGSL sources. Every kernel binds a 64-byte uniform `p` (`p.u`, `p.v`: vec4u;
 * `p.f`, `p.g`, `p.h`: vec4f) at binding 0, then its storage buffers. One-dimensional
 * kernels run 256 invocations a workgroup and spread workgroups over x and y.
 */

const header = /* wgsl */ `
struct P { u: vec4u, v: vec4u, f: vec4f, g: vec4f, h: vec4f }
@group(0) @binding(0) var<uniform> p: P;
`

const linear = /* wgsl */ `
fn flat(wg: vec3u, nwg: vec3u, lid: u32) -> u32 { return (wg.y * nwg.x + wg.x) * 256u + lid; }
fn stanh(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}
fn ssigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}
`

const entry1d = (body: string, bindings: string) => /* wgsl */ `${header}${bindings}${linear}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat(wg, nwg, lid);
${body}
}
`

/** Tiled matmul: 64x64 outputs per workgroup, 16x16 invocations computing 4x4 each, K in steps of 16. */
export const matmul = /* wgsl */ `${header}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
var<workgroup> As: array<f32, 1024>;
var<workgroup> Bs: array<f32, 1024>;
// p.u = (M, N, K, transA), p.v.x = transB
fn loadA(i: u32, k: u32) -> f32 {
  if (i >= p.u.x || k >= p.u.z) { return 0.0; }
  if (p.u.w == 1u) { return A[k * p.u.x + i]; }
  return A[i * p.u.z + k];
}
fn loadB(k: u32, j: u32) -> f32 {
  if (k >= p.u.z || j >= p.u.y) { return 0.0; }
  if (p.v.x == 1u) { return B[j * p.u.z + k]; }
  return B[k * p.u.y + j];
}
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  let t = lid.y * 16u + lid.x;
  var acc: array<f32, 16>;
  for (var x = 0u; x < 16u; x++) { acc[x] = 0.0; }
  for (var k0 = 0u; k0 < p.u.z; k0 += 16u) {
    // neighbouring invocations read neighbouring addresses of each operand's memory layout
    for (var e = 0u; e < 4u; e++) {
      let idx = t + e * 256u;
      var kk = idx / 64u;
      var ii = idx % 64u;
      if (p.u.w == 0u) { kk = idx % 16u; ii = idx / 16u; }
      As[kk * 64u + ii] = loadA(row0 + ii, k0 + kk);
      var kb = idx / 64u;
      var jb = idx % 64u;
      if (p.v.x == 1u) { kb = idx % 16u; jb = idx / 16u; }
      Bs[kb * 64u + jb] = loadB(k0 + kb, col0 + jb);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var r = 0u; r < 4u; r++) {
        a[r] = As[kk * 64u + lid.y * 4u + r];
        b[r] = Bs[kk * 64u + lid.x * 4u + r];
      }
      for (var r = 0u; r < 4u; r++) {
        for (var c = 0u; c < 4u; c++) { acc[r * 4u + c] = acc[r * 4u + c] + a[r] * b[c]; }
      }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r++) {
    let i = row0 + lid.y * 4u + r;
    if (i >= p.u.x) { continue; }
    for (var c = 0u; c < 4u; c++) {
      let j = col0 + lid.x * 4u + c;
      if (j < p.u.y) { C[i * p.u.y + j] = acc[r * 4u + c]; }
    }
  }
}
`

const io2 = `
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Y: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
`
const io1 = `
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
`

/** p.u = (size, N): O[i] = X[i] + Y[i % N] */
export const addBias = entry1d(`  if (i < p.u.x) { O[i] = X[i] + Y[i % p.u.y]; }`, io2)

/** p.u = (M, N): O[j] = sum_i X[i,j] (one invocation per column, rows in order). */
export const sumRows = entry1d(
  `  if (i >= p.u.y) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.u.x; r++) { s = s + X[r * p.u.y + i]; }
  O[i] = s;`,
  io1
)

/** p.u = (size, N): O[i] = X[i % N] */
export const broadcastRows = entry1d(`  if (i < p.u.x) { O[i] = X[i % p.u.y]; }`, io1)

/** p.u.x = size, p.f.x = scale: one workgroup, strided partial sums then a tree. */
export const sum = /* wgsl */ `${header}${io1}
var<workgroup> part: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < p.u.x; i += 256u) { s = s + X[i]; }
  part[lid] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w = w / 2u) {
    if (lid < w) { part[lid] = part[lid] + part[lid + w]; }
    workgroupBarrier();
  }
  if (lid == 0u) { O[0] = part[0] * p.f.x; }
}
`

const activationFns = /* wgsl */ `
const GELU_C: f32 = 0.7978845608028654;
fn act(kind: u32, x: f32) -> f32 {
  switch kind {
    case 0u: { return max(x, 0.0); }
    case 1u: { return 0.5 * x * (1.0 + stanh(GELU_C * (x + 0.044715 * x * x * x))); }
    case 2u: { return ssigmoid(x); }
    default: { return stanh(x); }
  }
}
fn actGrad(kind: u32, x: f32) -> f32 {
  switch kind {
    case 0u: { return select(0.0, 1.0, x > 0.0); }
    case 1u: {
      let t = stanh(GELU_C * (x + 0.044715 * x * x * x));
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
    }
    case 2u: { let s = ssigmoid(x); return s * (1.0 - s); }
    default: { let t = stanh(x); return 1.0 - t * t; }
  }
}
`

/** p.u = (size, kind) */
export const activation = entry1d(`  if (i < p.u.x) { O[i] = act(p.u.y, X[i]); }`, io1 + activationFns)

/** p.u = (size, kind): O = Y * f'(X) */
export const activationGrad = entry1d(`  if (i < p.u.x) { O[i] = Y[i] * actGrad(p.u.y, X[i]); }`, io2 + activationFns)

const lossIo = `
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Y: array<f32>;
@group(0) @binding(3) var<storage, read_write> L: array<f32>;
@group(0) @binding(4) var<storage, read_write> G: array<f32>;
`

/** p.u = (M, C): per-row loss L[i], gradient G = (softmax - onehot) / M. */
export const softmaxCrossEntropy = entry1d(
  `  if (i >= p.u.x) { return; }
  let C = p.u.y;
  let base = i * C;
  var mx = X[base];
  for (var c = 1u; c < C; c++) { mx = max(mx, X[base + c]); }
  var s = 0.0;
  for (var c = 0u; c < C; c++) { s = s + exp(X[base + c] - mx); }
  let label = u32(Y[i]);
  L[i] = log(s) + mx - X[base + label];
  let inv = 1.0 / f32(p.u.x);
  for (var c = 0u; c < C; c++) {
    G[base + c] = (exp(X[base + c] - mx) / s - select(0.0, 1.0, c == label)) * inv;
  }`,
  lossIo
)

/** p.u.x = M: stable BCE from logits. */
export const binaryCrossEntropy = entry1d(
  `  if (i >= p.u.x) { return; }
  let x = X[i];
  let y = Y[i];
  L[i] = max(x, 0.0) - x * y + log(1.0 + exp(-abs(x)));
  G[i] = (ssigmoid(x) - y) / f32(p.u.x);`,
  lossIo
)

/** p.u.x = size */
export const meanSquaredError = entry1d(
  `  if (i >= p.u.x) { return; }
  let d = X[i] - Y[i];
  L[i] = d * d;
  G[i] = 2.0 * d / f32(p.u.x);`,
  lossIo
)

/** p.u = (M*D, D, V): O[i] = table[ids[i / D], i % D] */
export const embedding = entry1d(
  `  if (i >= p.u.x) { return; }
  let r = min(u32(Y[i / p.u.y]), p.u.z - 1u);
  O[i] = X[r * p.u.y + i % p.u.y];`,
  io2
)

/** p.u = (U*D, D): O[u, d] = sum over positions of u (CSR offsets) of dy[pos, d] */
export const embeddingGrad = entry1d(
  `  if (i >= p.u.x) { return; }
  let u = i / p.u.y;
  let d = i % p.u.y;
  var s = 0.0;
  for (var k = Off[u]; k < Off[u + 1u]; k++) { s = s + X[Pos[k] * p.u.y + d]; }
  O[i] = s;`,
  `
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Off: array<u32>;
@group(0) @binding(3) var<storage, read> Pos: array<u32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
`
)

/** p.u = (M, D) */
export const rowDot = entry1d(
  `  if (i >= p.u.x) { return; }
  var s = 0.0;
  for (var d = 0u; d < p.u.y; d++) { s = s + X[i * p.u.y + d] * Y[i * p.u.y + d]; }
  O[i] = s;`,
  io2
)

/** p.u = (size, N) */
export const scaleRows = entry1d(`  if (i < p.u.x) { O[i] = X[i] * Y[i / p.u.y]; }`, io2)

/** p.u.x = size; p.f = (lr, momentum, weightDecay) */
export const sgd = entry1d(
  `  if (i >= p.u.x) { return; }
  let g = G[i] + p.f.z * W[i];
  let v = p.f.y * V[i] + g;
  V[i] = v;
  W[i] = W[i] - p.f.x * v;`,
  `
@group(0) @binding(1) var<storage, read_write> W: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> V: array<f32>;
`
)

/**
 * p.u.x = size; p.f = (lr, beta1, beta2, epsilon); p.g = (weightDecay, 1 - beta1^t, 1 - beta2^t);
 * p.h = (1 - beta1, 1 - beta2), computed in double precision on the host: `1.0 - p.f.z` in f32 loses about four
 * digits for beta2 = 0.999 (a relative error of 1.3e-5 in the second moment).
 */
export const adam = entry1d(
  `  if (i >= p.u.x) { return; }
  let g = G[i] + p.g.x * W[i];
  let m = p.f.y * M1[i] + p.h.x * g;
  let v = p.f.z * M2[i] + p.h.y * g * g;
  M1[i] = m;
  M2[i] = v;
  W[i] = W[i] - (p.f.x * (m / p.g.y)) / (sqrt(v / p.g.z) + p.f.w);`,
  `
@group(0) @binding(1) var<storage, read_write> W: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> M1: array<f32>;
@group(0) @binding(4) var<storage, read_write> M2: array<f32>;
`
)
