// Errors the library throws. Kernel failures are returned as errno values,
// never thrown; these classes cover what cannot be an errno: misuse of the
// library, and an access that ends in a signal.

import { SIGBUS, SIGSEGV } from "./constants.js";

/** A failed system call whose API has no result object to carry the errno. */
export class KernelError extends Error {
  override name = "KernelError";
  readonly errno: number;

  constructor(errno: number, message: string) {
    super(message);
    this.errno = errno;
  }
}

/**
 * A simulated access that the kernel ends with a signal: SIGSEGV for an
 * address with no mapping or without the needed permission, SIGBUS for a
 * poisoned page or a userfaultfd with the SIGBUS feature. The simulator
 * itself is unaffected; only the access fails.
 */
export class SignalError extends Error {
  override name = "SignalError";
  readonly signo: number;
  readonly address: number;

  constructor(signo: number, address: number, reason: string) {
    let name = `signal ${signo}`;
    if (signo === SIGBUS) name = "SIGBUS";
    else if (signo === SIGSEGV) name = "SIGSEGV";
    super(`${name} at 0x${address.toString(16)}: ${reason}`);
    this.signo = signo;
    this.address = address;
  }
}

/**
 * Thrown by every call into a kernel whose wasm core has failed: an export
 * trapped (a WebAssembly.RuntimeError such as an out-of-bounds access) or
 * aborted (WasmCoreAbort). Either is a bug in the core, never bad input,
 * and it may have stopped halfway through a change, so the kernel's state
 * can no longer be trusted. No call recovers from it, Kernel.reset()
 * included: create a new kernel. `cause` is the error of the failed call.
 */
export class KernelFailedError extends Error {
  override name = "KernelFailedError";
  /** The wasm export whose call failed first. */
  readonly exportName: string;

  constructor(exportName: string, failure: unknown) {
    const reason = failure instanceof Error ? `${failure.name}: ${failure.message}` : String(failure);
    super(`kernel unusable: its wasm core failed in ${exportName} (${reason}); create a new kernel with Kernel.create()`, { cause: failure });
    this.exportName = exportName;
  }
}

/** Throws TypeError unless `value` is a number (any number: range checks give errno values). */
export function requireNumber(value: unknown, name: string): number {
  if (typeof value !== "number") {
    throw new TypeError(`${name} must be a number, got ${value === null ? "null" : typeof value}`);
  }
  return value;
}

/** Throws TypeError unless `value` is a non-null object. */
export function requireObject(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null) {
    throw new TypeError(`${name} must be an object, got ${value === null ? "null" : typeof value}`);
  }
  return value as Record<string, unknown>;
}

/**
 * Converts a number the way the kernel reads a u64 argument: a safe
 * non-negative integer stays as it is; anything else (negative, fractional,
 * NaN, infinite or above 2^53) maps to Infinity, which fails every range
 * check the way a huge u64 does.
 */
export function asU64(value: number): number {
  return Number.isSafeInteger(value) && value >= 0 ? value : Infinity;
}

/**
 * Returns whether `value`, a result of asU64, has no bit outside `mask`
 * (a mask below 2^31). Unlike `value & ~mask`, which keeps only the low 32
 * bits, this rejects bits above bit 31 and values asU64 made Infinity.
 */
export function hasOnlyBits(value: number, mask: number): boolean {
  return value <= 0x7fffffff && (value & ~mask) === 0;
}
