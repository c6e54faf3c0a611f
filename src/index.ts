// uffd-wasm: a deterministic model of Linux userfaultfd whose page-copy
// core runs in WebAssembly.

export * from "./constants.js";
export { Kernel, type KernelOptions, type KernelStats } from "./mm/kernel.js";
export { Process, MADV_DONTNEED, type MmapOptions } from "./mm/process.js";
export { Userfaultfd } from "./uffd/userfaultfd.js";
export { KERNEL_VERSIONS, kernelProfile, type KernelProfile, type KernelVersion } from "./mm/profile.js";
export type { ApiArgs, ApiResult, RangeArgs, RegisterArgs, RegisterResult, ErrnoResult } from "./uffd/userfaultfd.js";
export type { CopyArgs, CopyResult, ZeropageArgs, ZeropageResult } from "./uffd/mfill.js";
export type { MoveArgs, MoveResult, PoisonArgs, PoisonResult, WriteprotectArgs } from "./uffd/ioctls.js";
export type { UffdMsg, PagefaultMsg, ForkMsg, ReadResult, ReadError } from "./uffd/messages.js";
export { KernelError, SignalError } from "./errors.js";
export { WasmCoreAbort, wasmSha256, type CoreBuild } from "./wasm/core.js";
