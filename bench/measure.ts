// Runs benchmark tasks with tinybench and returns their latency summaries.

import { Bench, type FnOptions } from "tinybench";
import type { Timing } from "./config.js";
import { summarizeSamples, type LatencySummary } from "./stats.js";

export interface TaskSpec {
  name: string;
  /** One sample: the timed work. Hooks in `options` run outside the timing. */
  fn: () => unknown;
  /** Whether `fn` returns a promise to await inside the timing. */
  async: boolean;
  options?: Omit<FnOptions, "async">;
}

function createBench(timing: Timing, share: number, warmup: boolean): Bench {
  return new Bench({
    time: timing.time * share,
    iterations: Math.max(1, Math.ceil(timing.iterations * share)),
    warmupTime: warmup ? timing.warmupTime : 0,
    warmupIterations: warmup ? timing.warmupIterations : 0,
    retainSamples: true,
    throws: true,
  });
}

export interface MeasureOptions {
  /** Runs between consecutive rounds of an interleaved measurement (two or more tasks), outside any timing. */
  betweenRounds?: () => void;
  /**
   * Rounds of an interleaved measurement (default 2, the two halves): each
   * round runs every task with its share of the time budget, in alternate
   * order, and only the first round warms up. More rounds spread each
   * task's samples over the whole run.
   */
  rounds?: number;
}

/** Runs `tasks` in one tinybench Bench and returns each task's samples, in milliseconds. */
async function runRound(timing: Timing, tasks: readonly TaskSpec[], share: number, warmup = true): Promise<Map<string, readonly number[]>> {
  const bench = createBench(timing, share, warmup);
  for (const task of tasks) {
    // Stating `async` keeps tinybench from calling fn once at add() time
    // to find out, which would run a sample outside its hooks.
    bench.add(task.name, task.fn, { ...task.options, async: task.async });
  }
  await bench.run();
  const samples = new Map<string, readonly number[]>();
  for (const benchTask of bench.tasks) {
    const result = benchTask.result;
    if (result.state !== "completed") {
      throw new Error(`benchmark task "${benchTask.name}" ended in state ${result.state}`);
    }
    samples.set(benchTask.name, result.latency.samples ?? []);
  }
  return samples;
}

/**
 * Warms up and runs `tasks` with tinybench and returns each task's latency
 * summary by name. With more than one task the runs are interleaved as
 * A B ... then ... B A (in `rounds` rounds, default 2), each round with
 * its share of the time budget, and the rounds' samples are merged, so a
 * drift of the host's speed shifts every task alike. A task that throws
 * rejects the whole call.
 */
export async function measureTasks(
  timing: Timing,
  tasks: readonly TaskSpec[],
  options: MeasureOptions = {},
): Promise<Map<string, LatencySummary>> {
  const names = new Set(tasks.map((task) => task.name));
  if (names.size !== tasks.length) throw new Error("benchmark task names must be unique");
  if (tasks.length === 1) {
    const samples = await runRound(timing, tasks, 1);
    return new Map([...samples].map(([name, values]) => [name, summarizeSamples(values)]));
  }
  const rounds = options.rounds ?? 2;
  if (!Number.isInteger(rounds) || rounds < 2) throw new RangeError(`rounds must be a whole number >= 2, got ${rounds}`);
  const merged = new Map<string, number[]>(tasks.map((task) => [task.name, []]));
  for (let round = 0; round < rounds; round++) {
    if (round > 0) options.betweenRounds?.();
    const order = round % 2 === 0 ? tasks : [...tasks].reverse();
    const samples = await runRound(timing, order, 1 / rounds, round === 0);
    for (const [name, values] of samples) merged.get(name)!.push(...values);
  }
  return new Map(tasks.map((task) => [task.name, summarizeSamples(merged.get(task.name)!)]));
}

/** Returns the summary of task `name`; throws when it is missing. */
export function summaryOf(summaries: Map<string, LatencySummary>, name: string): LatencySummary {
  const summary = summaries.get(name);
  if (summary === undefined) throw new Error(`no result for benchmark task "${name}"`);
  return summary;
}
