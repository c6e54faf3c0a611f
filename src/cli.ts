#!/usr/bin/env node
// Command-line entry point: `uffd-wasm <command> [options]`. Each command
// declares its options; the parser below is shared, so new commands (race,
// replay, compare) only add an entry to COMMANDS. Usage errors exit with 2.

import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { CommandUsageError, raceCommand, replayCommand, type CommandIo } from "./explore/commands.js";
import { BENCH_COMMANDS } from "../bench/commands.js";

const PROGRAM = "uffd-wasm";
const EXIT_USAGE = 2;

interface OptionSpec {
  /** Long name without the dashes. */
  name: string;
  /** Placeholder of the value, for an option that takes one. */
  value?: string;
  description: string;
  /** The option may be given several times; the values are joined with commas. */
  repeatable?: boolean;
}

/** An argument that is not an option, such as a scenario name or a file. */
interface PositionalSpec {
  /** Placeholder in the usage line, upper case, such as "TRACE"; the parsed value is stored under it. */
  name: string;
  /** Shown without brackets in the usage line; the command itself rejects a missing value, so --help still works. */
  required: boolean;
}

/** Parsed options: a string for options with a value, true for flags, and the positional argument under its name. */
type ParsedOptions = Map<string, string | true>;

interface Command {
  name: string;
  summary: string;
  positional?: PositionalSpec;
  /** Several positional arguments, in order (compare BASELINE CURRENT); used instead of `positional`. */
  positionals?: PositionalSpec[];
  options: OptionSpec[];
  /** Lines printed after the options in the command's help, such as its exit statuses. */
  notes?: string[];
  /** Runs the command and returns the exit code. */
  run(options: ParsedOptions): Promise<number>;
}

class UsageError extends Error {
  override name = "UsageError";
  /** The command whose usage to print, or null for the program's. */
  readonly command: Command | null;

  constructor(message: string, command: Command | null) {
    super(message);
    this.command = command;
  }
}

const HELP_OPTION: OptionSpec = { name: "help", description: "Print this help" };

/** Returns the value of option `name`, or undefined when it was not given. */
function stringOption(options: ParsedOptions, name: string): string | undefined {
  const value = options.get(name);
  return typeof value === "string" ? value : undefined;
}

/** Returns the I/O of the race and replay commands: this process's streams and the file system. */
function commandIo(): CommandIo {
  return {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    progress: process.stderr.isTTY === true,
    isDirectory(path) {
      try {
        return statSync(path).isDirectory();
      } catch {
        return false;
      }
    },
    ensureDirectory(path) {
      try {
        mkdirSync(path, { recursive: true });
        return statSync(path).isDirectory();
      } catch {
        return false;
      }
    },
    readFile: (path) => readFileSync(path, "utf8"),
    writeFile: (path, text) => writeFileSync(path, text),
    packageVersion: packageVersion(),
  };
}

/** Runs a race or replay command, turning its usage errors into this parser's. */
async function runExploreCommand(command: Command, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof CommandUsageError) throw new UsageError(error.message, command);
    throw error;
  }
}

const race: Command = {
  name: "race",
  summary: "Explore the schedules of a lazy-restore monitor racing fork, mremap, madvise and munmap, with the mmap_changing gate on and off",
  positional: { name: "SCENARIO", required: false },
  options: [
    { name: "gate", value: "on|off", description: "Explore only with the mmap_changing gate on or off (default: both)" },
    { name: "random", value: "N", description: "Draw N seeded random schedules per scenario and gate instead of exploring all" },
    { name: "seed", value: "S", description: "First seed of --random; schedule i uses seed S + i (default 1)" },
    { name: "preemption-bound", value: "K", description: "Explore every schedule with at most K preemptions (default 2)" },
    { name: "trace-dir", value: "DIR", description: "Write the trace of each shortest violating schedule to DIR as JSON" },
    HELP_OPTION,
  ],
  notes: [
    "SCENARIO is fork, mremap, remove, unmap or all (the default).",
    "Prints per scenario and gate how many schedules ran and how many broke the",
    "transparency oracle, then the shortest violating schedule of each as two",
    "columns (process | monitor).",
    "",
    "Exit status: 0 when the exploration ran, whether or not it found violations;",
    "2 for a usage error.",
  ],
  run(options) {
    return runExploreCommand(this, () => {
      const args = {
        scenario: stringOption(options, "SCENARIO"),
        gate: stringOption(options, "gate"),
        random: stringOption(options, "random"),
        seed: stringOption(options, "seed"),
        preemptionBound: stringOption(options, "preemption-bound"),
        traceDir: stringOption(options, "trace-dir"),
      };
      const defined = Object.fromEntries(Object.entries(args).filter(([, value]) => value !== undefined));
      return raceCommand(defined, commandIo());
    });
  },
};

const replay: Command = {
  name: "replay",
  summary: "Re-run the schedule of a trace written by race --trace-dir, step by step, and check its outcome",
  positional: { name: "TRACE", required: true },
  options: [HELP_OPTION],
  notes: [
    "Exit status: 0 when the run reproduces the trace's outcome; 1 when it does not",
    "(the model or the wasm binary changed); 2 for a usage error, including a",
    "trace file that is missing or invalid.",
  ],
  run(options) {
    const trace = stringOption(options, "TRACE");
    return runExploreCommand(this, () => replayCommand(trace === undefined ? {} : { trace }, commandIo()));
  },
};

const COMMANDS: Command[] = [...BENCH_COMMANDS, race, replay];

function optionLabel(option: OptionSpec): string {
  const names = option.name === "help" ? "-h, --help" : `--${option.name}`;
  return option.value ? `${names} ${option.value}` : names;
}

function programUsage(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length), "help".length);
  const lines = [
    `Usage: ${PROGRAM} <command> [options]`,
    "",
    "Commands:",
    ...COMMANDS.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`),
    `  ${"help".padEnd(width)}  Print this help, or a command's help with "help <command>"`,
    "",
    "Options:",
    "  -h, --help   Print this help",
    "  --version    Print the package version",
    "",
    `Run "${PROGRAM} <command> --help" for the options of a command.`,
  ];
  return lines.join("\n") + "\n";
}

function commandUsage(command: Command): string {
  const options = command.options
    .filter((option) => option.name !== "help")
    .map((option) => `[--${option.name}${option.value ? ` ${option.value}` : ""}]`);
  const positionals = command.positionals ?? (command.positional === undefined ? [] : [command.positional]);
  const synopsis = [...positionals.map((positional) => (positional.required ? positional.name : `[${positional.name}]`)), ...options];
  const width = Math.max(...command.options.map((option) => optionLabel(option).length));
  const lines = [
    `Usage: ${PROGRAM} ${command.name} ${synopsis.join(" ")}`.trimEnd(),
    "",
    command.summary + ".",
    "",
    "Options:",
    ...command.options.map((option) => `  ${optionLabel(option).padEnd(width)}  ${option.description}`),
    ...(command.notes === undefined ? [] : ["", ...command.notes]),
  ];
  return lines.join("\n") + "\n";
}

/** Parses the arguments after the command name against its option specs. */
function parseOptions(command: Command, args: readonly string[]): ParsedOptions {
  const parsed: ParsedOptions = new Map();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "-h") {
      parsed.set("help", true);
      continue;
    }
    if (!arg.startsWith("--")) {
      const positionals = command.positionals ?? (command.positional === undefined ? [] : [command.positional]);
      const positional = positionals.find((spec) => !parsed.has(spec.name));
      if (!arg.startsWith("-") && positional !== undefined) {
        parsed.set(positional.name, arg);
        continue;
      }
      const problem = arg.startsWith("-") ? "unknown option" : "unexpected argument";
      throw new UsageError(`${problem} "${arg}"`, command);
    }
    const equals = arg.indexOf("=");
    const name = arg.slice(2, equals < 0 ? undefined : equals);
    const spec = command.options.find((option) => option.name === name);
    if (spec === undefined) throw new UsageError(`unknown option "--${name}"`, command);
    if (parsed.has(name) && spec.repeatable !== true) throw new UsageError(`option --${name} given more than once`, command);
    if (spec.value === undefined) {
      if (equals >= 0) throw new UsageError(`option --${name} takes no value, got "${arg}"`, command);
      parsed.set(name, true);
      continue;
    }
    let value: string | undefined;
    if (equals >= 0) value = arg.slice(equals + 1);
    else value = args[++i];
    if (value === undefined || value === "" || (equals < 0 && value.startsWith("--"))) {
      throw new UsageError(`option --${name} requires a ${spec.value} value`, command);
    }
    const previous = parsed.get(name);
    parsed.set(name, typeof previous === "string" ? `${previous},${value}` : value);
  }
  return parsed;
}

function packageVersion(): string {
  try {
    const manifest = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
    return manifest.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

function findCommand(name: string): Command | undefined {
  return COMMANDS.find((command) => command.name === name);
}

/** Runs the command line `args` (without node and the script) and returns the exit code. */
async function main(args: readonly string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first === undefined) throw new UsageError("missing command", null);
  if (first === "-h" || first === "--help") {
    process.stdout.write(programUsage());
    return 0;
  }
  if (first === "--version") {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (first === "help") {
    const [topic, extra] = rest;
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}" for help`, null);
    if (topic === undefined) {
      process.stdout.write(programUsage());
      return 0;
    }
    const command = findCommand(topic);
    if (command === undefined) throw new UsageError(`unknown command "${topic}"`, null);
    process.stdout.write(commandUsage(command));
    return 0;
  }
  if (first.startsWith("-")) throw new UsageError(`unknown option "${first}"`, null);
  const command = findCommand(first);
  if (command === undefined) throw new UsageError(`unknown command "${first}"`, null);
  const options = parseOptions(command, rest);
  if (options.has("help")) {
    process.stdout.write(commandUsage(command));
    return 0;
  }
  return command.run(options);
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  const prefix = error.command ? `${PROGRAM} ${error.command.name}` : PROGRAM;
  process.stderr.write(`${prefix}: ${error.message}\n\n${error.command ? commandUsage(error.command) : programUsage()}`);
  process.exitCode = EXIT_USAGE;
}
