// Shared setup for the tests: every kernel runs the debug wasm build, whose
// assertions trap on a broken invariant instead of corrupting state.

import { Kernel, type KernelOptions } from "../src/index.js";

export function createKernel(options: KernelOptions = {}): Promise<Kernel> {
  return Kernel.create({ build: "debug", maxMemory: 64 << 20, ...options });
}

/** Returns a page of `size` bytes, all equal to `value`. */
export function pageOf(value: number, size = 4096): Uint8Array {
  return new Uint8Array(size).fill(value);
}

/**
 * Waits one macrotask turn, so every queued microtask and the promise
 * chains it starts have run. The model wakes blocked accesses through
 * promise callbacks only, so after this a woken access has either finished
 * or blocked again. It is not a timed wait.
 */
export function drain(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A promise with its settlement recorded, so a test can check it is still pending. */
export interface Watched<T> {
  readonly promise: Promise<T>;
  state: "pending" | "fulfilled" | "rejected";
  value?: T;
  reason?: unknown;
}

/** Records when `promise` settles, which also marks a rejection as handled. */
export function watch<T>(promise: Promise<T>): Watched<T> {
  const watched: Watched<T> = { promise, state: "pending" };
  promise.then(
    (value) => {
      watched.state = "fulfilled";
      watched.value = value;
    },
    (reason: unknown) => {
      watched.state = "rejected";
      watched.reason = reason;
    },
  );
  return watched;
}

/**
 * Drains queued work, then returns `watched`'s promise. Throws at once if it
 * is still pending, so a model that leaves an access blocked fails fast
 * instead of hitting the test timeout.
 */
export async function settled<T>(watched: Watched<T>): Promise<T> {
  await drain();
  if (watched.state === "pending") throw new Error("promise still pending after draining: the access or fork it tracks is blocked");
  return watched.promise;
}

/** Watches `promise` and returns `settled` of it. */
export function settledNow<T>(promise: Promise<T>): Promise<T> {
  return settled(watch(promise));
}
