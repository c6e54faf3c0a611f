// Scheduling strategies: how the scheduler picks among ready threads.

import type { ChooseFn } from "./scheduler.js";

/**
 * FIFO, the default: the thread that ran last goes on while it is ready;
 * otherwise the ready thread with the lowest id (the earliest spawned).
 * No preemption, so plain tests and benchmarks run one fixed order.
 */
export function fifo(): ChooseFn {
  return (_ready, _decision, previous) => (previous >= 0 ? previous : 0);
}

/**
 * Returns a seeded pseudo-random generator of floats in [0, 1)
 * (mulberry32: 32-bit state, enough for choosing among a few threads).
 * Seeds are taken modulo 2^32. Throws TypeError unless `seed` is a number
 * and RangeError unless it is a whole number.
 */
export function seededRandom(seed: number): () => number {
  if (typeof seed !== "number") throw new TypeError(`seed must be a number, got ${typeof seed}`);
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a whole number, got ${seed}`);
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Seeded random: each decision picks a ready thread uniformly. */
export function random(seed: number): ChooseFn {
  const next = seededRandom(seed);
  return (ready) => Math.floor(next() * ready.length);
}

/** Thrown when a replayed schedule no longer fits the run (the model changed). */
export class ReplayMismatch extends Error {
  override name = "ReplayMismatch";
}

/**
 * Replays recorded choices: decision i takes `choices[i]`. A decision past
 * the end of the record, or a choice the ready set cannot take, throws
 * ReplayMismatch, because the run has diverged from the recording. Throws
 * TypeError unless `choices` is an array, and RangeError for a choice that
 * is not a whole number >= 0.
 */
export function replay(choices: readonly number[]): ChooseFn {
  if (!Array.isArray(choices)) throw new TypeError("replay: choices must be an array of thread indexes");
  const bad = choices.findIndex((choice) => !Number.isSafeInteger(choice) || choice < 0);
  if (bad >= 0) throw new RangeError(`replay: choices[${bad}] must be a whole number >= 0, got ${String(choices[bad])}`);
  return (ready, decision) => {
    const choice = choices[decision];
    if (choice === undefined) {
      throw new ReplayMismatch(`the run needs ${decision + 1} decisions, the trace records only ${choices.length}`);
    }
    if (choice >= ready.length) {
      throw new ReplayMismatch(`decision ${decision} chose thread index ${choice}, but only ${ready.length} threads are ready`);
    }
    return choice;
  };
}
