// The `race` and `replay` commands of the uffd-wasm CLI, without the
// process around them. src/cli.ts parses the command line and passes the
// arguments here with an I/O object (output streams and files). Tests call
// these functions directly with their own I/O.

import { ReplayMismatch } from "../sched/strategies.js";
import { exploreScenario, type RaceReport } from "./race.js";
import { SCENARIO_NAMES, isScenarioName, scenarioSummary, type ScenarioName } from "./scenarios.js";
import { TraceFormatError, buildTrace, formatInterleaving, outcomeText, parseTrace, replayTrace, replayWarnings, traceToJson, type Trace } from "./trace.js";

export const DEFAULT_PREEMPTION_BOUND = 2;
export const DEFAULT_SEED = 1;
/** Exit status of a command that ran, whatever it found. */
export const EXIT_OK = 0;
/** Exit status of a replay whose run did not reproduce the trace. */
export const EXIT_MISMATCH = 1;
/** Schedules between two progress lines. */
const PROGRESS_EVERY = 100;

/** The output streams, files and facts the commands take from the process that runs them. */
export interface CommandIo {
  /** Writes `text` to standard output. */
  out(text: string): void;
  /** Writes `text` to standard error. */
  err(text: string): void;
  /** Whether to draw progress lines on standard error: only when it is a terminal. */
  readonly progress: boolean;
  isDirectory(path: string): boolean;
  /** Creates the directory (and its parents) when missing; returns whether it exists afterwards. */
  ensureDirectory?(path: string): boolean;
  /** Returns the file's text; throws when it cannot be read. */
  readFile(path: string): string;
  writeFile(path: string, text: string): void;
  /** The package version, recorded in traces. */
  readonly packageVersion: string;
}

/** A command line the command cannot run: the CLI prints the message with the command's usage and exits with 2. */
export class CommandUsageError extends Error {
  override name = "CommandUsageError";
}

export interface RaceArguments {
  /** fork, mremap, remove, unmap or all (the default). */
  scenario?: string;
  /** on or off; both when absent. */
  gate?: string;
  /** Number of random schedules per scenario and gate, instead of the exhaustive search. */
  random?: string;
  /** First seed of the random schedules. */
  seed?: string;
  /** Maximum preemptions per schedule of the exhaustive search. */
  preemptionBound?: string;
  /** Directory to write each shortest counterexample's trace in. */
  traceDir?: string;
}

function parseWholeNumber(value: string, option: string, min: number): number {
  const number = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number) || number < min) throw new CommandUsageError(`invalid --${option} ${JSON.stringify(value)}: expected a whole number >= ${min}`);
  return number;
}

interface RacePlan {
  scenarios: ScenarioName[];
  gates: boolean[];
  random: { count: number; seed: number } | null;
  preemptionBound: number;
  traceDir: string | null;
}

function planRace(args: RaceArguments, io: CommandIo): RacePlan {
  const scenario = args.scenario ?? "all";
  if (scenario !== "all" && !isScenarioName(scenario)) {
    throw new CommandUsageError(`unknown scenario "${scenario}": expected ${SCENARIO_NAMES.join(", ")} or all`);
  }
  if (args.gate !== undefined && args.gate !== "on" && args.gate !== "off") throw new CommandUsageError(`invalid --gate "${args.gate}": expected on or off`);
  if (args.seed !== undefined && args.random === undefined) throw new CommandUsageError("--seed requires --random N");
  if (args.random !== undefined && args.preemptionBound !== undefined) {
    throw new CommandUsageError("--preemption-bound applies to the exhaustive search; drop it or --random");
  }
  const traceDir = args.traceDir ?? null;
  const traceDirReady = traceDir === null || (io.ensureDirectory?.(traceDir) ?? io.isDirectory(traceDir));
  if (!traceDirReady) throw new CommandUsageError(`invalid --trace-dir ${traceDir}: not a directory and cannot be created`);
  return {
    scenarios: scenario === "all" ? [...SCENARIO_NAMES] : [scenario],
    gates: args.gate === undefined ? [false, true] : [args.gate === "on"],
    random: args.random === undefined ? null : {
      count: parseWholeNumber(args.random, "random", 1),
      seed: args.seed === undefined ? DEFAULT_SEED : parseWholeNumber(args.seed, "seed", 0),
    },
    preemptionBound: args.preemptionBound === undefined ? DEFAULT_PREEMPTION_BOUND : parseWholeNumber(args.preemptionBound, "preemption-bound", 0),
    traceDir,
  };
}

const gateName = (gate: boolean) => (gate ? "on" : "off");

function tableRow(scenario: string, gate: string, schedules: string, violating: string): string {
  return `${scenario.padEnd(8)}  ${gate.padEnd(4)}  ${schedules.padStart(9)}  ${violating.padStart(9)}\n`;
}

/**
 * `uffd-wasm race`: explores the schedules of each chosen scenario under
 * each chosen gate setting, prints how many ran and how many broke the
 * oracle, then the shortest violating schedule of each, and writes its
 * trace when a trace directory is given. Returns EXIT_OK; throws
 * CommandUsageError for invalid arguments.
 */
export async function raceCommand(args: RaceArguments, io: CommandIo): Promise<number> {
  const plan = planRace(args, io);
  if (plan.random === null) {
    io.out(`Exploring every schedule with at most ${plan.preemptionBound} preemption${plan.preemptionBound === 1 ? "" : "s"}.\n`);
  } else {
    const { count, seed } = plan.random;
    io.out(`Drawing ${count} random schedule${count === 1 ? "" : "s"} per scenario and gate, seeds ${seed} to ${seed + count - 1}.\n`);
  }
  for (const scenario of plan.scenarios) io.out(`  ${scenario}: ${scenarioSummary(scenario)}\n`);
  io.out("\n" + tableRow("scenario", "gate", "schedules", "violating"));

  const reports: RaceReport[] = [];
  for (const scenario of plan.scenarios) {
    for (const gate of plan.gates) {
      const progress = io.progress
        ? (schedules: number) => {
            if (schedules % PROGRESS_EVERY === 0) io.err(`\r${scenario}, gate ${gateName(gate)}: ${schedules} schedules`);
          }
        : undefined;
      const report = await exploreScenario(scenario, {
        gate,
        preemptionBound: plan.preemptionBound,
        ...(plan.random !== null ? { random: plan.random } : {}),
        ...(progress !== undefined ? { onProgress: progress } : {}),
      });
      if (io.progress) io.err("\r\x1b[K");
      io.out(tableRow(scenario, gateName(gate), String(report.schedules), String(report.violating)));
      reports.push(report);
    }
  }
  for (const report of reports) printCounterexample(report, plan.traceDir, io);
  return EXIT_OK;
}

function printCounterexample(report: RaceReport, traceDir: string | null, io: CommandIo): void {
  const shortest = report.shortest;
  if (shortest === null) return;
  const trace = buildTrace(shortest.run, {
    strategy: report.strategy,
    packageVersion: io.packageVersion,
    ...(shortest.seed !== undefined ? { seed: shortest.seed } : {}),
    ...(report.preemptionBound !== undefined ? { preemptionBound: report.preemptionBound } : {}),
  });
  const drawn = shortest.seed !== undefined ? `, drawn with seed ${shortest.seed}` : "";
  io.out(`\n${report.scenario}, gate ${gateName(report.gate)}: the shortest violating schedule has ${shortest.length} steps (choices ${trace.choices.join(",")}${drawn}):\n`);
  io.out(formatInterleaving(trace.interleaving));
  io.out(`${outcomeText(trace.outcome)}\n`);
  if (traceDir === null) {
    io.out("Run again with --trace-dir DIR to write its trace, then replay it with: uffd-wasm replay DIR/FILE\n");
    return;
  }
  const path = `${traceDir.replace(/\/+$/, "")}/${report.scenario}-gate-${gateName(report.gate)}.json`;
  io.writeFile(path, traceToJson(trace));
  io.out(`trace written to ${path}; replay it with: uffd-wasm replay ${path}\n`);
}

/**
 * `uffd-wasm replay TRACE`: re-runs the trace's schedule, prints each step
 * and the outcome, and checks that the outcome is the recorded one.
 * Returns EXIT_OK when it is, EXIT_MISMATCH when the run diverges or ends
 * otherwise; throws CommandUsageError for a missing, unreadable or invalid
 * trace file.
 */
export async function replayCommand(args: { trace?: string }, io: CommandIo): Promise<number> {
  if (args.trace === undefined) throw new CommandUsageError("missing TRACE: the path of a trace file written by uffd-wasm race --trace-dir");
  let text: string;
  try {
    text = io.readFile(args.trace);
  } catch (error) {
    throw new CommandUsageError(`cannot read trace ${args.trace}: ${error instanceof Error ? error.message : String(error)}`);
  }
  let trace: Trace;
  try {
    trace = parseTrace(text);
  } catch (error) {
    if (error instanceof TraceFormatError) throw new CommandUsageError(`invalid trace ${args.trace}: ${error.message}`);
    throw error;
  }
  let origin = "replay";
  if (trace.strategy === "random") origin = `random, seed ${trace.seed ?? "not recorded"}`;
  if (trace.strategy === "exhaustive") origin = `exhaustive, preemption bound ${trace.preemptionBound ?? "not recorded"}`;
  io.out(`Replaying ${trace.scenario}, gate ${gateName(trace.gate)}: ${trace.choices.length} recorded choices (${origin}).\n`);
  for (const warning of replayWarnings(trace, io.packageVersion)) io.err(`warning: ${warning}\n`);
  try {
    const result = await replayTrace(trace, io.packageVersion);
    io.out(formatInterleaving(result.trace.interleaving));
    io.out(`${outcomeText(result.trace.outcome)}\n`);
    io.out("The replay reproduces the recorded outcome.\n");
    return EXIT_OK;
  } catch (error) {
    if (!(error instanceof ReplayMismatch)) throw error;
    io.out(`replay mismatch: ${error.message}\n`);
    return EXIT_MISMATCH;
  }
}
