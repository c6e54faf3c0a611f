// Counterexample traces: one schedule of a race scenario, as JSON that
// replays it. A trace stores the scheduler's choices (the index of the
// thread picked at each decision with more than one ready thread), what
// produced them (exhaustive search, a seeded random draw, or a replay), the
// outcome, and the interleaving as two columns of steps (process |
// monitor) for people to read. Replaying re-runs the scenario with the
// recorded choices and checks that the outcome is the same.

import { ReplayMismatch, replay } from "../sched/strategies.js";
import { noteText, type Step } from "../sched/scheduler.js";
import { wasmSha256, type CoreBuild } from "../wasm/core.js";
import { MONITOR_THREAD, isScenarioName, runScenario, type ScenarioName, type ScenarioRun } from "./scenarios.js";

export const TRACE_FORMAT = "uffd-wasm race trace";
/** The end of the label of a step that resumes a sleeping call; see Scheduler. */
const CONTINUED = " (continued)";
export const TRACE_VERSION = 1;

export type TraceStrategy = "exhaustive" | "random" | "replay";

export type TraceOutcome = { readonly status: "pass" } | { readonly status: "violation"; readonly violations: readonly string[] };

/** One step of the interleaving: exactly one of the two columns is not empty. */
export interface TraceRow {
  readonly step: number;
  readonly process: string;
  readonly monitor: string;
}

export interface Trace {
  readonly format: typeof TRACE_FORMAT;
  readonly version: typeof TRACE_VERSION;
  readonly scenario: ScenarioName;
  /** Whether the kernel kept the mmap_changing gate. */
  readonly gate: boolean;
  readonly strategy: TraceStrategy;
  /** The seed of the random strategy that drew this schedule; only for strategy "random". */
  readonly seed?: number;
  /** The preemption bound of the exhaustive search; only for strategy "exhaustive". */
  readonly preemptionBound?: number;
  /** The chosen index into the ready threads (ordered by thread id) at each decision. */
  readonly choices: readonly number[];
  readonly packageVersion: string;
  /** SHA-256 of the wasm binary the schedule ran on. */
  readonly wasmSha256: string;
  readonly outcome: TraceOutcome;
  readonly interleaving: readonly TraceRow[];
}

/** Thrown for a trace file that is not valid JSON or not a trace of a known format and version. */
export class TraceFormatError extends Error {
  override name = "TraceFormatError";
}

export interface TraceSource {
  readonly strategy: TraceStrategy;
  readonly seed?: number;
  readonly preemptionBound?: number;
  /** The package version to record; the library cannot read package.json in a browser, so the caller passes it. */
  readonly packageVersion: string;
}

/** Returns the outcome of `run`: its violations, or a pass. */
export function outcomeOf(run: ScenarioRun): TraceOutcome {
  return run.violations.length === 0 ? { status: "pass" } : { status: "violation", violations: [...run.violations] };
}

/** Returns the outcome as one line of text, for output and comparison. */
export function outcomeText(outcome: TraceOutcome): string {
  return outcome.status === "pass" ? "pass: every read matched the oracle" : `violation: ${outcome.violations.join(" | ")}`;
}

/**
 * Builds the trace of `run`, a schedule that `source` produced. Throws
 * TypeError unless `run` comes from runScenario and `source` has a known
 * strategy and a string packageVersion.
 */
export function buildTrace(run: ScenarioRun, source: TraceSource): Trace {
  if (typeof run !== "object" || run === null || !Array.isArray(run.steps) || !Array.isArray(run.result?.decisions)) {
    throw new TypeError("buildTrace: run must be a result of runScenario");
  }
  if (typeof source !== "object" || source === null) throw new TypeError("buildTrace: source must be an object");
  if (source.strategy !== "exhaustive" && source.strategy !== "random" && source.strategy !== "replay") {
    throw new TypeError(`buildTrace: strategy must be "exhaustive", "random" or "replay", got ${String(source.strategy)}`);
  }
  if (typeof source.packageVersion !== "string") throw new TypeError("buildTrace: packageVersion must be a string");
  return {
    format: TRACE_FORMAT,
    version: TRACE_VERSION,
    scenario: run.scenario,
    gate: run.gate,
    strategy: source.strategy,
    ...(source.seed !== undefined ? { seed: source.seed } : {}),
    ...(source.preemptionBound !== undefined ? { preemptionBound: source.preemptionBound } : {}),
    choices: run.result.decisions.map((decision) => decision.chosen),
    packageVersion: source.packageVersion,
    wasmSha256: run.wasmSha256,
    outcome: outcomeOf(run),
    interleaving: interleavingRows(run.steps),
  };
}

/**
 * Turns steps into rows: the monitor thread's steps go in the monitor
 * column, every other thread's in the process column, prefixed with the
 * thread's name. A row's label is the call its thread chose at the end of
 * its previous row. When other threads ran in between, that previous row
 * ends with "preempted before <call>": this is where races happen.
 */
export function interleavingRows(steps: readonly Step[]): TraceRow[] {
  const rows: TraceRow[] = [];
  for (const [index, step] of steps.entries()) {
    const notes = step.notes.map(noteText);
    const next = steps.findIndex((later, laterIndex) => laterIndex > index && later.thread === step.thread);
    const nextLabel = next < 0 ? "" : steps[next]!.label;
    if (next > index + 1 && !nextLabel.endsWith(CONTINUED)) notes.push(`preempted before ${nextLabel}`);
    const text = notes.length === 0 ? step.label : `${step.label} — ${notes.join("; ")}`;
    const monitor = step.threadName === MONITOR_THREAD;
    rows.push({ step: rows.length + 1, process: monitor ? "" : `${step.threadName}: ${text}`, monitor: monitor ? text : "" });
  }
  return rows;
}

/**
 * Formats rows as a table of two columns, "process | monitor", with the
 * step number first. Throws TypeError unless `rows` is an array of rows.
 */
export function formatInterleaving(rows: readonly TraceRow[]): string {
  const valid = (row: TraceRow) => typeof row === "object" && row !== null && typeof row.process === "string" && typeof row.monitor === "string";
  if (!Array.isArray(rows) || !rows.every(valid)) throw new TypeError("formatInterleaving: rows must be an array of { step, process, monitor }");
  const numberWidth = Math.max(4, String(rows.length).length);
  const processWidth = Math.min(64, Math.max("process".length, ...rows.map((row) => row.process.length)));
  const line = (step: string, process: string, monitor: string) => `${step.padStart(numberWidth)}  ${process.padEnd(processWidth)} | ${monitor}`.trimEnd();
  const lines = [line("step", "process", "monitor"), line("", "-".repeat(processWidth), "-".repeat(7))];
  for (const row of rows) lines.push(line(String(row.step), row.process, row.monitor));
  return lines.join("\n") + "\n";
}

/** Serializes `trace` as indented JSON with a final newline; throws TraceFormatError for a malformed trace (see checkTrace). */
export function traceToJson(trace: Trace): string {
  checkTrace(trace);
  return JSON.stringify(trace, null, 2) + "\n";
}

/**
 * Parses and checks a trace; throws TypeError unless `text` is a string,
 * and TraceFormatError naming the first field that is wrong.
 */
export function parseTrace(text: string): Trace {
  if (typeof text !== "string") throw new TypeError(`parseTrace: text must be a string, got ${text === null ? "null" : typeof text}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TraceFormatError(`invalid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  return checkTrace(value);
}

/** Checks that `value` is a trace of this format and version; throws TraceFormatError naming the first field that is wrong. */
export function checkTrace(value: unknown): Trace {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new TraceFormatError("a trace must be a JSON object");
  const trace = value as Record<string, unknown>;
  if (trace.format !== TRACE_FORMAT) throw new TraceFormatError(`format must be "${TRACE_FORMAT}", got ${JSON.stringify(trace.format)}`);
  if (trace.version !== TRACE_VERSION) throw new TraceFormatError(`version ${JSON.stringify(trace.version)} is not supported; this build reads version ${TRACE_VERSION}`);
  if (typeof trace.scenario !== "string" || !isScenarioName(trace.scenario)) throw new TraceFormatError(`unknown scenario ${JSON.stringify(trace.scenario)}`);
  if (typeof trace.gate !== "boolean") throw new TraceFormatError("gate must be true or false");
  if (trace.strategy !== "exhaustive" && trace.strategy !== "random" && trace.strategy !== "replay") {
    throw new TraceFormatError(`strategy must be "exhaustive", "random" or "replay", got ${JSON.stringify(trace.strategy)}`);
  }
  const choices = trace.choices;
  if (!Array.isArray(choices) || !choices.every((choice) => Number.isSafeInteger(choice) && (choice as number) >= 0)) {
    throw new TraceFormatError("choices must be an array of whole numbers >= 0");
  }
  for (const field of ["packageVersion", "wasmSha256"]) {
    if (typeof trace[field] !== "string") throw new TraceFormatError(`${field} must be a string`);
  }
  if (trace.seed !== undefined && !Number.isSafeInteger(trace.seed)) throw new TraceFormatError("seed must be a whole number");
  const bound = trace.preemptionBound;
  if (bound !== undefined && !(Number.isSafeInteger(bound) && (bound as number) >= 0)) {
    throw new TraceFormatError("preemptionBound must be a whole number >= 0");
  }
  checkOutcome(trace.outcome);
  if (!Array.isArray(trace.interleaving)) throw new TraceFormatError("interleaving must be an array of rows");
  return trace as unknown as Trace;
}

function checkOutcome(value: unknown): void {
  if (typeof value !== "object" || value === null) throw new TraceFormatError("outcome must be an object");
  const outcome = value as Record<string, unknown>;
  if (outcome.status === "pass") return;
  const violations = outcome.violations;
  if (outcome.status !== "violation" || !Array.isArray(violations) || !violations.every((text) => typeof text === "string")) {
    throw new TraceFormatError('outcome must be { "status": "pass" } or { "status": "violation", "violations": [strings] }');
  }
}

export interface ReplayResult {
  readonly run: ScenarioRun;
  /** The trace of the replayed run, with strategy "replay". */
  readonly trace: Trace;
  /** Reasons to doubt the replay that do not stop it, such as another wasm binary. */
  readonly warnings: readonly string[];
}

/** Returns the build whose wasm hash the trace records, or null when neither embedded build has it. */
function buildOf(trace: Trace): CoreBuild | null {
  const builds: CoreBuild[] = ["release", "debug"];
  return builds.find((build) => wasmSha256(build) === trace.wasmSha256) ?? null;
}

/** Returns the reasons to doubt a replay of `trace` on this build that do not stop it. */
export function replayWarnings(trace: Trace, packageVersion: string): string[] {
  const warnings: string[] = [];
  if (buildOf(trace) === null) {
    const ours = wasmSha256("release");
    warnings.push(`the trace ran on wasm ${trace.wasmSha256.slice(0, 12)}…, this build has ${ours.slice(0, 12)}…; the schedule may not reproduce`);
  }
  if (trace.packageVersion !== packageVersion) warnings.push(`the trace was written by version ${trace.packageVersion}, this is ${packageVersion}`);
  return warnings;
}

/**
 * Re-runs the schedule of `trace` and checks that it reproduces: the same
 * number of decisions and the same outcome. Runs the wasm build whose hash
 * the trace records, or the release build when neither has it (see
 * replayWarnings). Throws ReplayMismatch when the run does not reproduce
 * the trace, TraceFormatError for a malformed trace (see checkTrace) and
 * TypeError unless `packageVersion` is a string.
 */
export async function replayTrace(trace: Trace, packageVersion: string): Promise<ReplayResult> {
  checkTrace(trace);
  if (typeof packageVersion !== "string") throw new TypeError(`packageVersion must be a string, got ${typeof packageVersion}`);
  const warnings = replayWarnings(trace, packageVersion);
  const build = buildOf(trace) ?? "release";
  const run = await runScenario(trace.scenario, { gate: trace.gate, choose: replay(trace.choices), build });
  const taken = run.result.decisions.length;
  if (taken !== trace.choices.length) {
    throw new ReplayMismatch(`the run ended after ${taken} decisions, the trace records ${trace.choices.length}`);
  }
  const replayed = buildTrace(run, { strategy: "replay", packageVersion });
  const expected = outcomeText(trace.outcome);
  const actual = outcomeText(replayed.outcome);
  if (actual !== expected) throw new ReplayMismatch(`the replay ended with "${actual}", the trace records "${expected}"`);
  return { run, trace: replayed, warnings };
}
