// The `bench` and `compare` commands of the uffd-wasm CLI, shaped like the
// Command interface of src/cli.ts: a name, a summary, the option specs and
// run(options), which returns the exit code. Both validate their own option
// values and print usage errors themselves (exit code 2), so src/cli.ts only
// lists them. The runner is imported on first use, so `uffd-wasm --help`
// does not load the benchmark.

import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { DEFAULT_MAX_REGRESSION_PERCENT, SUITE_NAMES, type SuiteName } from "./config.js";
import type { BenchOptions } from "./runner.js";
import { OUTPUT_FORMATS, type OutputFormat } from "./report/ci-formats.js";

const PROGRAM = "uffd-wasm";
export const EXIT_USAGE = 2;

export interface CommandOption {
  /** Long name without the dashes. */
  name: string;
  /** Placeholder of the value, for an option that takes one. */
  value?: string;
  description: string;
  /** The option may be given several times; the parser joins the values with commas. */
  repeatable?: boolean;
}

/** A positional argument; the parser stores its value in the options map under `name`. */
export interface CommandPositional {
  /** Placeholder in the usage line, upper case, such as "BASELINE". */
  name: string;
  /** Shown without brackets in the usage line; the command itself rejects a missing value, so --help still works. */
  required: boolean;
}

export interface BenchCommand {
  name: string;
  summary: string;
  /** Positional arguments, in order. */
  positionals?: CommandPositional[];
  options: CommandOption[];
  /** Lines printed after the options in the command's help, such as its exit statuses. */
  notes?: string[];
  /** Runs the command and returns the exit code. */
  run(options: Map<string, string | true>): Promise<number>;
}

/** An invalid option value; the command prints it with a pointer to its help and exits with 2. */
export class BenchUsageError extends Error {
  override name = "BenchUsageError";
}

const HELP_OPTION: CommandOption = { name: "help", description: "Print this help" };

function stringOption(options: Map<string, string | true>, name: string): string | null {
  const value = options.get(name);
  if (value === undefined) return null;
  if (value === true) throw new BenchUsageError(`option --${name} requires a value`);
  return value;
}

/** Resolves an output path and checks that its directory exists, before a long run. */
function outputPath(options: Map<string, string | true>, name: string): string | null {
  const value = stringOption(options, name);
  if (value === null) return null;
  const path = resolve(value);
  const directory = dirname(path);
  let isDirectory = false;
  try {
    isDirectory = statSync(directory).isDirectory();
  } catch {
    isDirectory = false;
  }
  if (!isDirectory) throw new BenchUsageError(`invalid --${name} FILE ${path}: directory ${directory} does not exist`);
  return path;
}

/** Resolves an input report path and checks that the file exists. */
function inputPath(value: string | null, label: string): string | null {
  if (value === null) return null;
  const path = resolve(value);
  if (!existsSync(path)) throw new BenchUsageError(`${label} ${path} not found`);
  return path;
}

/** Parses "copy-kernels,fork" (from --suite, possibly repeated) into suite names, in run order. */
export function parseSuites(text: string): SuiteName[] {
  const names = text.split(",").map((name) => name.trim());
  const selected = new Set<SuiteName>();
  for (const name of names) {
    if (name === "") throw new BenchUsageError(`invalid --suite "${text}": empty suite name`);
    if (!(SUITE_NAMES as readonly string[]).includes(name)) {
      throw new BenchUsageError(`unknown suite "${name}"; choose from ${SUITE_NAMES.join(", ")}`);
    }
    selected.add(name as SuiteName);
  }
  return SUITE_NAMES.filter((name) => selected.has(name));
}

/** Parses --max-regression: "10%", "10" or "2.5%". */
export function parseMaxRegression(text: string | null): number | null {
  if (text === null) return null;
  const match = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(text);
  const value = match === null ? NaN : Number(match[1]);
  if (!Number.isFinite(value)) throw new BenchUsageError(`invalid --max-regression "${text}": expected a percentage such as 10%`);
  return value;
}

/** Validates the parsed options of `bench` and returns the runner's options; throws BenchUsageError. */
export function parseBenchOptions(options: Map<string, string | true>): BenchOptions {
  const suiteText = stringOption(options, "suite");
  const formatText = stringOption(options, "format");
  if (formatText !== null && !(OUTPUT_FORMATS as readonly string[]).includes(formatText)) {
    throw new BenchUsageError(`unknown --format "${formatText}"; choose from ${OUTPUT_FORMATS.join(", ")}`);
  }
  const output = outputPath(options, "output");
  if (output !== null && formatText === null) throw new BenchUsageError("option --output requires --format");
  const baselinePath = inputPath(stringOption(options, "baseline"), "baseline report");
  const maxRegression = parseMaxRegression(stringOption(options, "max-regression"));
  if (maxRegression !== null && baselinePath === null) throw new BenchUsageError("option --max-regression requires --baseline");
  const parsed: BenchOptions = {
    quick: options.has("quick"),
    quiet: options.has("quiet"),
    jsonPath: outputPath(options, "json"),
    htmlPath: outputPath(options, "html"),
    format: formatText as OutputFormat | null,
    outputPath: output,
    baselinePath,
    maxRegressionPercent: maxRegression ?? DEFAULT_MAX_REGRESSION_PERCENT,
  };
  if (suiteText !== null) parsed.suites = parseSuites(suiteText);
  return parsed;
}

function usageFailure(command: string, error: unknown): number {
  if (!(error instanceof BenchUsageError)) throw error;
  process.stderr.write(`${PROGRAM} ${command}: ${error.message}\nRun "${PROGRAM} ${command} --help" for the options.\n`);
  return EXIT_USAGE;
}

export const benchCommand: BenchCommand = {
  name: "bench",
  summary: "Time the copy kernels, UFFDIO_COPY and UFFDIO_ZEROPAGE, copying under events, fork, page walks, faults and exploration against native anchors",
  options: [
    { name: "quick", description: "Use 64 MiB copy regions instead of 256 MiB and shorter time budgets (same figures)" },
    { name: "suite", value: "NAME", repeatable: true, description: `Run only these suites (repeatable or comma-separated): ${SUITE_NAMES.join(", ")}` },
    { name: "json", value: "FILE", description: "Also write every figure, the targets and the run metadata to FILE as JSON" },
    { name: "format", value: "FORMAT", description: "Also write the figures for a CI tracker: bmf (Bencher), github (both github-action-benchmark arrays), github-bigger, github-smaller" },
    { name: "output", value: "FILE", description: "Write the --format output to FILE instead of stdout (the table then stays on stdout)" },
    { name: "html", value: "FILE", description: "Also write a self-contained HTML report with charts to FILE" },
    { name: "baseline", value: "FILE", description: "Check this run against a JSON report saved with --json; exit 1 on a regression or a changed count" },
    { name: "max-regression", value: "PERCENT", description: `Allowed worsening of a figure beyond the noise, with --baseline (default ${DEFAULT_MAX_REGRESSION_PERCENT}%)` },
    { name: "quiet", description: "Print no progress lines on stderr (they are printed only when stderr is a terminal)" },
    HELP_OPTION,
  ],
  notes: [
    "Exit status: 0 when every selected suite ran, also when targets are missed;",
    "1 when a suite failed, a report could not be written, or --baseline found a",
    "regression or a changed deterministic count; 2 for a usage error.",
  ],
  async run(options) {
    let parsed: BenchOptions;
    try {
      parsed = parseBenchOptions(options);
    } catch (error) {
      return usageFailure(this.name, error);
    }
    const { runBench } = await import("./runner.js");
    const { ReportFormatError } = await import("./report/json.js");
    try {
      return await runBench(parsed);
    } catch (error) {
      if (error instanceof ReportFormatError) return usageFailure(this.name, new BenchUsageError(error.message));
      throw error;
    }
  },
};

export const compareCommand: BenchCommand = {
  name: "compare",
  summary: "Check a saved benchmark run against a baseline run: figures beyond the threshold plus noise, and every deterministic count",
  positionals: [
    { name: "BASELINE", required: true },
    { name: "CURRENT", required: true },
  ],
  options: [
    { name: "max-regression", value: "PERCENT", description: `Allowed worsening of a figure beyond the noise (default ${DEFAULT_MAX_REGRESSION_PERCENT}%)` },
    { name: "all", description: "List every figure, also the unchanged ones" },
    HELP_OPTION,
  ],
  notes: [
    "BASELINE and CURRENT are reports saved with bench --json.",
    "",
    "Exit status: 0 when no figure regressed and no deterministic count changed;",
    "1 otherwise; 2 for a usage error, including a missing or invalid report.",
  ],
  async run(options) {
    const { compareReports, renderComparison } = await import("./compare.js");
    const { readJsonReport, ReportFormatError } = await import("./report/json.js");
    try {
      const baselineText = stringOption(options, "BASELINE");
      const currentText = stringOption(options, "CURRENT");
      if (baselineText === null || currentText === null) throw new BenchUsageError("expected two reports: compare BASELINE CURRENT");
      const baselinePath = inputPath(baselineText, "baseline report")!;
      const currentPath = inputPath(currentText, "report")!;
      const maxRegression = parseMaxRegression(stringOption(options, "max-regression")) ?? DEFAULT_MAX_REGRESSION_PERCENT;
      let baseline;
      let current;
      try {
        baseline = readJsonReport(baselinePath);
        current = readJsonReport(currentPath);
      } catch (error) {
        if (error instanceof ReportFormatError) throw new BenchUsageError(error.message);
        throw error;
      }
      const comparison = compareReports(baseline, current, maxRegression);
      process.stdout.write(renderComparison(comparison, { baseline: baselineText, current: currentText }, options.has("all")));
      return comparison.passed ? 0 : 1;
    } catch (error) {
      return usageFailure(this.name, error);
    }
  },
};

export const BENCH_COMMANDS: readonly BenchCommand[] = [benchCommand, compareCommand];
