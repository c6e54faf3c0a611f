// Exploration of schedules: every schedule up to a preemption bound
// (depth-first, each run replaying a prefix of choices), or a seeded sample.

import type { ChooseFn, Decision } from "../sched/scheduler.js";
import { random } from "../sched/strategies.js";

/** One decision point of the depth-first search. */
interface Frame {
  /** Ready-set size at this decision. */
  readySize: number;
  /** The index of the thread that yielded here, or -1. */
  previous: number;
  /** Choices in the order they are tried: the non-preemptive one first. */
  order: number[];
  /** Position in `order` of the choice the current run takes. */
  position: number;
  /** Preemptions taken before this decision. */
  preemptionsBefore: number;
}

export interface ExploreOptions {
  /** Most preemptions a schedule may contain (a preemption takes the processor from a thread that could go on); a whole number >= 0, or Infinity. */
  preemptionBound: number;
  /** Stop after this many schedules (the exploration is then incomplete); a whole number >= 1, or Infinity (the default). */
  maxSchedules?: number;
}

/** Throws TypeError unless `value` is a number, and RangeError unless it is a whole number >= `min` (or Infinity, when allowed). */
export function checkCount(value: unknown, name: string, min: number, allowInfinity = false): void {
  if (typeof value !== "number") throw new TypeError(`${name} must be a number, got ${value === null ? "null" : typeof value}`);
  if ((Number.isSafeInteger(value) && value >= min) || (allowInfinity && value === Infinity)) return;
  const range = allowInfinity ? `a whole number >= ${min} or Infinity` : `a whole number >= ${min}`;
  throw new RangeError(`${name} must be ${range}, got ${value}`);
}

/** Throws TypeError unless `value` is a function. */
function checkFunction(value: unknown, name: string): void {
  if (typeof value !== "function") throw new TypeError(`${name} must be a function, got ${value === null ? "null" : typeof value}`);
}

export interface ExploreSummary {
  schedules: number;
  /** False when maxSchedules cut the search short. */
  complete: boolean;
}

/**
 * Runs `runOnce` once per schedule with at most `preemptionBound`
 * preemptions, each time with a strategy that replays the chosen prefix and
 * then continues without preempting. `runOnce` returns the decisions its run
 * recorded; `onSchedule` sees each run's choices. Returns the count.
 * Throws TypeError or RangeError for arguments of the wrong type or range.
 */
export async function exploreExhaustive(
  runOnce: (choose: ChooseFn) => Promise<readonly Decision[]>,
  options: ExploreOptions,
  onSchedule: (choices: readonly number[]) => boolean | void,
): Promise<ExploreSummary> {
  checkFunction(runOnce, "runOnce");
  checkFunction(onSchedule, "onSchedule");
  if (typeof options !== "object" || options === null) throw new TypeError("options must be an object");
  checkCount(options.preemptionBound, "preemptionBound", 0, true);
  if (options.maxSchedules !== undefined) checkCount(options.maxSchedules, "maxSchedules", 1, true);
  const stack: Frame[] = [];
  let schedules = 0;
  const max = options.maxSchedules ?? Infinity;
  for (;;) {
    if (schedules >= max) return { schedules, complete: false };
    let depth = 0;
    const choose: ChooseFn = (ready, decision, previous) => {
      depth = decision + 1;
      const frame = stack[decision];
      if (frame !== undefined) {
        if (frame.readySize !== ready.length) throw new Error("exploration diverged: the same prefix gave another ready set");
        return frame.order[frame.position]!;
      }
      const preferred = previous >= 0 ? previous : 0;
      const order = [preferred, ...Array.from({ length: ready.length }, (_, i) => i).filter((i) => i !== preferred)];
      const parent = stack[decision - 1];
      const before = parent === undefined ? 0 : parent.preemptionsBefore + (isPreemption(parent) ? 1 : 0);
      stack.push({ readySize: ready.length, previous, order, position: 0, preemptionsBefore: before });
      return preferred;
    };
    const decisions = await runOnce(choose);
    schedules++;
    stack.length = Math.min(stack.length, depth, decisions.length);
    const stop = onSchedule(decisions.map((decision) => decision.chosen));
    if (stop === true) return { schedules, complete: false };
    if (!advance(stack, options.preemptionBound)) return { schedules, complete: true };
  }
}

function isPreemption(frame: Frame): boolean {
  const choice = frame.order[frame.position]!;
  return frame.previous >= 0 && choice !== frame.previous;
}

/** Moves the deepest frame with an untried choice within the bound to that choice; false when none is left. */
function advance(stack: Frame[], bound: number): boolean {
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    while (frame.position + 1 < frame.order.length) {
      frame.position++;
      if (frame.preemptionsBefore + (isPreemption(frame) ? 1 : 0) <= bound) return true;
    }
    stack.pop();
  }
  return false;
}

/**
 * Runs `count` schedules drawn with seeds seed, seed + 1, ... Throws
 * TypeError or RangeError unless `count` is a whole number >= 0 and `seed`
 * a whole number.
 */
export async function exploreRandom(
  runOnce: (choose: ChooseFn) => Promise<readonly Decision[]>,
  count: number,
  seed: number,
  onSchedule: (choices: readonly number[], seed: number) => boolean | void,
): Promise<ExploreSummary> {
  checkFunction(runOnce, "runOnce");
  checkFunction(onSchedule, "onSchedule");
  checkCount(count, "count", 0);
  if (typeof seed !== "number") throw new TypeError(`seed must be a number, got ${seed === null ? "null" : typeof seed}`);
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a whole number, got ${seed}`);
  for (let i = 0; i < count; i++) {
    const decisions = await runOnce(random(seed + i));
    if (onSchedule(decisions.map((decision) => decision.chosen), seed + i) === true) return { schedules: i + 1, complete: false };
  }
  return { schedules: count, complete: true };
}
