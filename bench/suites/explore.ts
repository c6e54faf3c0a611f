// Schedule exploration: schedules explored per second for each race
// scenario of src/explore/scenarios.ts, with the mmap_changing gate on,
// through exploreExhaustive with a preemption bound of 2, up to
// schedulesPerSample schedules per sample.

import { exploreExhaustive } from "../../src/explore/explore.js";
import { SCENARIO_NAMES, runScenario, type ScenarioName } from "../../src/explore/scenarios.js";
import type { ChooseFn, Decision } from "../../src/sched/scheduler.js";
import type { SuiteContext, Timing } from "../config.js";
import { measureTasks, summaryOf } from "../measure.js";
import { rateFigure, type Figure } from "../stats.js";

export const EXPLORE_SUITE = "explore";
export const EXPLORE_GROUP = "schedule exploration (exhaustive, gate on, preemption bound 2)";
/** The fork scenario's figure, which the exploration target checks. */
export const EXPLORE_ID = "explore.fork";
const PREEMPTION_BOUND = 2;

/** Raised by a suite that cannot run here; the runner prints the reason and goes on. */
export class SuiteSkipped extends Error {
  override name = "SuiteSkipped";
}

/** Wraps runScenario(name) as exploreExhaustive's run, with the gate on. */
function scenarioRunner(name: ScenarioName): (choose: ChooseFn) => Promise<readonly Decision[]> {
  return async (choose) => (await runScenario(name, { gate: true, choose })).result.decisions;
}

/**
 * Returns the timing of one scenario: at least 1 s and three warm-up
 * samples. A sample is a whole bounded search (tens of milliseconds for
 * fork), so quick runs got about ten samples, some with a major GC, and a
 * spread near ±50%.
 */
function exploreTiming(timing: Timing): Timing {
  return { ...timing, time: Math.max(timing.time, 1000), warmupIterations: Math.max(timing.warmupIterations, 3) };
}

export async function runExplore(context: SuiteContext): Promise<Figure[]> {
  const { config, progress } = context;
  const figures: Figure[] = [];
  for (const name of SCENARIO_NAMES) {
    const id = `explore.${name}`;
    const runOnce = scenarioRunner(name);
    const options = { preemptionBound: PREEMPTION_BOUND, maxSchedules: config.schedulesPerSample };
    const explore = () => exploreExhaustive(runOnce, options, () => {});
    progress.task(`${name}: counting pass, up to ${config.schedulesPerSample} schedules`);
    const counted = await explore();
    progress.task(`${name}: timing`);
    const summaries = await measureTasks(exploreTiming(config.timing), [{ name: id, fn: explore, async: true }]);
    const note = counted.complete ? "the whole bounded search fits in one sample" : undefined;
    figures.push(
      rateFigure(
        {
          id,
          name: `${name} scenario, schedules explored`,
          group: EXPLORE_GROUP,
          suite: EXPLORE_SUITE,
          counts: { schedules: counted.schedules, preemptionBound: PREEMPTION_BOUND },
          ...(note ? { note } : {}),
        },
        summaryOf(summaries, id),
        counted.schedules,
        "schedules/s",
      ),
    );
  }
  return figures;
}
