// Exploration of a race scenario's schedules: every schedule up to a
// preemption bound, or a seeded random sample, each run checked against
// the transparency oracle. The report counts the schedules and the ones
// that broke the oracle, and keeps the shortest of those.

import type { ChooseFn, Decision } from "../sched/scheduler.js";
import type { CoreBuild } from "../wasm/core.js";
import { exploreExhaustive, exploreRandom } from "./explore.js";
import { checkScenarioArgs, runScenario, type ScenarioName, type ScenarioRun } from "./scenarios.js";
import { interleavingRows } from "./trace.js";

export interface RaceOptions {
  gate: boolean;
  /** Maximum preemptions per schedule for the exhaustive search; ignored with `random`. */
  preemptionBound: number;
  /** Draw this many schedules at random instead of searching them all. */
  random?: { readonly count: number; readonly seed: number };
  /** Stop the exhaustive search after this many schedules. */
  maxSchedules?: number;
  build?: CoreBuild;
  /** Called after each schedule with the count so far. */
  onProgress?: (schedules: number) => void;
}

/** The shortest violating schedule found, with its run. */
export interface Counterexample {
  readonly run: ScenarioRun;
  readonly choices: readonly number[];
  /** For a random exploration: the seed that drew this schedule. */
  readonly seed?: number;
  /** Steps in its interleaving, the measure of "shortest". */
  readonly length: number;
}

export interface RaceReport {
  readonly scenario: ScenarioName;
  readonly gate: boolean;
  readonly strategy: "exhaustive" | "random";
  readonly preemptionBound?: number;
  readonly seed?: number;
  readonly schedules: number;
  /** False when maxSchedules cut the exhaustive search short. */
  readonly complete: boolean;
  /** Schedules whose run broke the oracle. */
  readonly violating: number;
  /** The violating schedule with the fewest steps (then the fewest decisions, then the first found), or null. */
  readonly shortest: Counterexample | null;
}

/**
 * Explores the schedules of scenario `name` and returns the counts and the
 * shortest counterexample. Throws TypeError or RangeError for arguments of
 * the wrong type or range.
 */
export async function exploreScenario(name: ScenarioName, options: RaceOptions): Promise<RaceReport> {
  checkScenarioArgs(name, options);
  if (options.onProgress !== undefined && typeof options.onProgress !== "function") throw new TypeError("onProgress must be a function");
  const drawn: unknown = options.random;
  if (drawn !== undefined && (typeof drawn !== "object" || drawn === null)) throw new TypeError("random must be an object { count, seed }");
  let last: ScenarioRun | null = null;
  const runOnce = async (choose: ChooseFn): Promise<readonly Decision[]> => {
    last = await runScenario(name, { gate: options.gate, choose, ...(options.build ? { build: options.build } : {}) });
    return last.result.decisions;
  };
  let schedules = 0;
  let violating = 0;
  let shortest: Counterexample | null = null;
  const onSchedule = (choices: readonly number[], seed?: number): void => {
    schedules++;
    options.onProgress?.(schedules);
    const run = last!;
    if (run.violations.length === 0) return;
    violating++;
    const length = interleavingRows(run.steps).length;
    if (shortest === null || length < shortest.length || (length === shortest.length && choices.length < shortest.choices.length)) {
      shortest = { run, choices: [...choices], length, ...(seed !== undefined ? { seed } : {}) };
    }
  };

  const base = { scenario: name, gate: options.gate };
  if (options.random !== undefined) {
    const { count, seed } = options.random;
    const summary = await exploreRandom(runOnce, count, seed, (choices, drawn) => onSchedule(choices, drawn));
    return { ...base, strategy: "random", seed, schedules: summary.schedules, complete: summary.complete, violating, shortest };
  }
  const bound = options.preemptionBound;
  const summary = await exploreExhaustive(runOnce, { preemptionBound: bound, ...(options.maxSchedules !== undefined ? { maxSchedules: options.maxSchedules } : {}) }, (choices) =>
    onSchedule(choices),
  );
  return { ...base, strategy: "exhaustive", preemptionBound: bound, schedules: summary.schedules, complete: summary.complete, violating, shortest };
}
