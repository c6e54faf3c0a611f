// Schedule exploration: schedules explored per second for the fork race
// scenario of src/explore/scenarios.ts, through exploreExhaustive with a
// preemption bound of 2, SCHEDULES_PER_SAMPLE schedules per sample.
//
// The scenarios module is loaded at run time, so this suite builds and runs
// without it: when it is missing, or has no runScenario(name, { gate,
// choose }) whose run carries result.decisions, the suite is skipped with a
// one-line reason.

import { exploreExhaustive } from "../../src/explore/explore.js";
import type { ChooseFn, Decision } from "../../src/sched/scheduler.js";
import type { SuiteContext } from "../config.js";
import { measureTasks, summaryOf } from "../measure.js";
import { rateFigure, type Figure } from "../stats.js";

export const EXPLORE_SUITE = "explore";
export const EXPLORE_GROUP = "schedule exploration (fork scenario, exhaustive, preemption bound 2)";
export const EXPLORE_ID = "explore.fork";
const PREEMPTION_BOUND = 2;
/** Resolved against this file at run time (dist/bench/suites/), so TypeScript does not need the module to exist. */
const SCENARIOS_MODULE: string = "../../src/explore/scenarios.js";

/** Raised by a suite that cannot run here; the runner prints the reason and goes on. */
export class SuiteSkipped extends Error {
  override name = "SuiteSkipped";
}

type RunOnce = (choose: ChooseFn) => Promise<readonly Decision[]>;

function decisionsOf(run: unknown): readonly Decision[] | null {
  const decisions = (run as { result?: { decisions?: unknown } } | null)?.result?.decisions;
  return Array.isArray(decisions) ? (decisions as Decision[]) : null;
}

/** Wraps the module's runScenario("fork", ...) as exploreExhaustive's runOnce, with the mmap_changing gate on. */
export function forkScenarioRunner(module: Record<string, unknown>): RunOnce | string {
  const runScenario = module.runScenario;
  if (typeof runScenario !== "function") {
    const names = Object.keys(module).join(", ") || "none";
    return `src/explore/scenarios.ts exports no runScenario (exports: ${names})`;
  }
  return async (choose) => {
    const decisions = decisionsOf(await (runScenario as (name: string, options: unknown) => Promise<unknown>)("fork", { gate: true, choose }));
    if (decisions === null) throw new Error('runScenario("fork") returned no result.decisions array');
    return decisions;
  };
}

export async function runExplore(context: SuiteContext): Promise<Figure[]> {
  const { config, progress } = context;
  let module: Record<string, unknown>;
  try {
    module = (await import(SCENARIOS_MODULE)) as Record<string, unknown>;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === "ERR_MODULE_NOT_FOUND") throw new SuiteSkipped("src/explore/scenarios.ts does not exist yet");
    throw error;
  }
  const runOnce = forkScenarioRunner(module);
  if (typeof runOnce === "string") throw new SuiteSkipped(runOnce);

  const options = { preemptionBound: PREEMPTION_BOUND, maxSchedules: config.schedulesPerSample };
  const explore = () => exploreExhaustive(runOnce, options, () => {});
  progress.task(`counting pass, up to ${config.schedulesPerSample} schedules`);
  const counted = await explore();
  const task = { name: EXPLORE_ID, fn: explore, async: true };
  progress.task("timing");
  const summaries = await measureTasks(config.timing, [task]);
  const note = counted.complete ? "the whole bounded search fits in one sample" : undefined;
  return [
    rateFigure(
      {
        id: EXPLORE_ID,
        name: "fork scenario, schedules explored",
        group: EXPLORE_GROUP,
        suite: EXPLORE_SUITE,
        counts: { schedules: counted.schedules, preemptionBound: PREEMPTION_BOUND },
        ...(note ? { note } : {}),
      },
      summaryOf(summaries, EXPLORE_ID),
      counted.schedules,
      "schedules/s",
    ),
  ];
}
