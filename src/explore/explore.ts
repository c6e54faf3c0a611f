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
  /** Most preemptions a schedule may contain (a preemption takes the processor from a thread that could go on). */
  preemptionBound: number;
  /** Stop after this many schedules (the exploration is then incomplete). */
  maxSchedules?: number;
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
 */
export async function exploreExhaustive(
  runOnce: (choose: ChooseFn) => Promise<readonly Decision[]>,
  options: ExploreOptions,
  onSchedule: (choices: readonly number[]) => boolean | void,
): Promise<ExploreSummary> {
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

/** Runs `count` schedules drawn with seeds seed, seed + 1, ... */
export async function exploreRandom(
  runOnce: (choose: ChooseFn) => Promise<readonly Decision[]>,
  count: number,
  seed: number,
  onSchedule: (choices: readonly number[], seed: number) => boolean | void,
): Promise<ExploreSummary> {
  for (let i = 0; i < count; i++) {
    const decisions = await runOnce(random(seed + i));
    if (onSchedule(decisions.map((decision) => decision.chosen), seed + i) === true) return { schedules: i + 1, complete: false };
  }
  return { schedules: count, complete: true };
}
