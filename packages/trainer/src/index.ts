/**
 * @org/trainer: tensors and kernels on WebGPU (Dawn) and a CPU reference backend,
 * models, optimizers, data-parallel training across devices, checkpoints.
 *
 * @since 0.1.0
 */
export * as Backend from "./Backend.js"
export * as Checkpoint from "./Checkpoint.js"
export * as Cpu from "./Cpu.js"
export * as Dataset from "./Dataset.js"
export * as Devices from "./Devices.js"
export * as Model from "./Model.js"
export * as Optimizer from "./Optimizer.js"
export * as Progress from "./Progress.js"
export * as Random from "./Random.js"
export * as Safetensors from "./Safetensors.js"
export * as Trainer from "./Trainer.js"
export * as TrainerError from "./TrainerError.js"
export * as WebGpu from "./WebGpu.js"
