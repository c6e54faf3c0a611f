#!/usr/bin/env node
// Command-line entry point: `uffd-wasm <command> [options]`. Each command
// declares its options; the parser below is shared, so new commands (race,
// replay, compare) only add an entry to COMMANDS. Usage errors exit with 2.

import { readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";

const PROGRAM = "uffd-wasm";
const EXIT_USAGE = 2;

interface OptionSpec {
  /** Long name without the dashes. */
  name: string;
  /** Placeholder of the value, for an option that takes one. */
  value?: string;
  description: string;
}

/** Parsed options: a string for options with a value, true for flags. */
type ParsedOptions = Map<string, string | true>;

interface Command {
  name: string;
  summary: string;
  options: OptionSpec[];
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

const bench: Command = {
  name: "bench",
  summary: "Time the copy kernels, UFFDIO_COPY, fork's copy_page_range and copying under fork events",
  options: [
    { name: "quick", description: "Use 64 MiB regions instead of 256 MiB and shorter time budgets (same figures)" },
    { name: "json", value: "FILE", description: "Also write every figure, the targets and the run metadata to FILE as JSON" },
    HELP_OPTION,
  ],
  async run(options) {
    const json = options.get("json");
    const jsonPath = typeof json === "string" ? resolve(json) : null;
    if (jsonPath !== null) checkWritableDirectory(jsonPath, this);
    const { runBench } = await import("../bench/runner.js");
    return runBench({ quick: options.has("quick"), jsonPath });
  },
};

const COMMANDS: Command[] = [bench];

/** Fails early, before a long run, when the directory of `path` does not exist. */
function checkWritableDirectory(path: string, command: Command): void {
  const directory = dirname(path);
  let isDirectory = false;
  try {
    isDirectory = statSync(directory).isDirectory();
  } catch {
    isDirectory = false;
  }
  if (!isDirectory) throw new UsageError(`invalid --json FILE ${path}: directory ${directory} does not exist`, command);
}

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
  const synopsis = command.options
    .filter((option) => option !== HELP_OPTION)
    .map((option) => `[--${option.name}${option.value ? ` ${option.value}` : ""}]`)
    .join(" ");
  const width = Math.max(...command.options.map((option) => optionLabel(option).length));
  const lines = [
    `Usage: ${PROGRAM} ${command.name} ${synopsis}`.trimEnd(),
    "",
    command.summary + ".",
    "",
    "Options:",
    ...command.options.map((option) => `  ${optionLabel(option).padEnd(width)}  ${option.description}`),
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
      const problem = arg.startsWith("-") ? "unknown option" : "unexpected argument";
      throw new UsageError(`${problem} "${arg}"`, command);
    }
    const equals = arg.indexOf("=");
    const name = arg.slice(2, equals < 0 ? undefined : equals);
    const spec = command.options.find((option) => option.name === name);
    if (spec === undefined) throw new UsageError(`unknown option "--${name}"`, command);
    if (parsed.has(name)) throw new UsageError(`option --${name} given more than once`, command);
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
    parsed.set(name, value);
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
