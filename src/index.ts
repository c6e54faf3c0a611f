// uffd-wasm: a deterministic model of Linux userfaultfd whose page-copy
// core runs in WebAssembly.

export * from "./constants.js";
export { Kernel, MAX_FRAMES, MAX_MEMORY, type KernelOptions, type KernelStats } from "./mm/kernel.js";
export { Process, MADV_DONTNEED, MADV_REMOVE, type MmapOptions } from "./mm/process.js";
export { Userfaultfd } from "./uffd/userfaultfd.js";
export { KERNEL_VERSIONS, kernelProfile, type KernelProfile, type KernelVersion } from "./mm/profile.js";
export type { ApiArgs, ApiResult, RangeArgs, RegisterArgs, RegisterResult, ErrnoResult } from "./uffd/userfaultfd.js";
export type { CopyArgs, CopyResult, ZeropageArgs, ZeropageResult } from "./uffd/mfill.js";
export type { ContinueArgs, ContinueResult, MoveArgs, MoveResult, PoisonArgs, PoisonResult, WriteprotectArgs } from "./uffd/ioctls.js";
export { MappedFile, type FileKind } from "./mm/file.js";
export type { UffdMsg, PagefaultMsg, ForkMsg, ReadResult, ReadError } from "./uffd/messages.js";
export { KernelError, KernelFailedError, SignalError } from "./errors.js";
export { checkInvariants, InvariantViolation, type InvariantFinding, type InvariantRule } from "./check/invariants.js";
export { WasmCoreAbort, wasmSha256, type CoreBuild } from "./wasm/core.js";
export {
  UFFDIO_API, UFFDIO_REGISTER, UFFDIO_UNREGISTER, UFFDIO_WAKE, UFFDIO_COPY, UFFDIO_ZEROPAGE, UFFDIO_MOVE,
  UFFDIO_WRITEPROTECT, UFFDIO_CONTINUE, UFFDIO_POISON, UFFD_MSG_SIZE, UFFDIO_API_SIZE, UFFDIO_RANGE_SIZE,
  UFFDIO_REGISTER_SIZE, UFFDIO_COPY_SIZE, UFFDIO_ZEROPAGE_SIZE, UFFDIO_MOVE_SIZE, UFFDIO_WRITEPROTECT_SIZE,
  UFFDIO_CONTINUE_SIZE, UFFDIO_POISON_SIZE, encodeMsg, decodeMsg, readBytes, ioctl,
  type DecodedMsg, type DecodedPagefault, type DecodedFork, type DecodedRemap, type DecodedRemove,
  type ReadBytesResult,
} from "./uffd/abi.js";
export type { RemapMsg, RangeMsg } from "./uffd/messages.js";
export { Scheduler, SimThread, type ChooseFn, type Decision, type RunResult } from "./sched/scheduler.js";
export { fifo, random, replay, seededRandom, ReplayMismatch } from "./sched/strategies.js";
export { exploreExhaustive, exploreRandom, type ExploreOptions, type ExploreSummary } from "./explore/explore.js";
export { SCENARIO_NAMES, runScenario, type ScenarioName, type ScenarioOptions, type ScenarioRun } from "./explore/scenarios.js";
export { exploreScenario, type RaceOptions, type RaceReport, type Counterexample } from "./explore/race.js";
export { buildTrace, parseTrace, replayTrace, traceToJson, formatInterleaving, type Trace } from "./explore/trace.js";
export { LazyRestoreMonitor, spawnLazyRestore, type LazyRestoreOptions } from "./monitor/lazy-restore.js";
export { Oracle } from "./monitor/oracle.js";
export { COPY_KERNEL_MEMORY_COPY, COPY_KERNEL_SIMD } from "./wasm/core.js";
