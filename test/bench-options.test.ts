// Option parsing of the bench and compare commands: every rejected value
// gets a message naming it, and the commands exit with 2 before any run.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { BenchUsageError, EXIT_USAGE, benchCommand, compareCommand, parseBenchOptions, parseMaxRegression, parseSuites } from "../bench/commands.js";
import { SUITE_NAMES } from "../bench/config.js";
import { writeJsonReport } from "../bench/report/json.js";
import { fixtureReport } from "./bench-helpers.js";

const directory = mkdtempSync(join(tmpdir(), "uffd-bench-options-"));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

const options = (entries: [string, string | true][]) => new Map<string, string | true>(entries);

function usageMessage(entries: [string, string | true][]): string {
  try {
    parseBenchOptions(options(entries));
  } catch (error) {
    expect(error).toBeInstanceOf(BenchUsageError);
    return (error as Error).message;
  }
  throw new Error("parseBenchOptions accepted the options");
}

describe("parseBenchOptions", () => {
  it("defaults to every suite", () => {
    const parsed = parseBenchOptions(options([]));
    expect(parsed.suites).toBeUndefined();
    expect(parsed.quick).toBe(false);
    expect(parsed.maxRegressionPercent).toBe(10);
  });

  it("takes comma-separated and repeated suites in run order", () => {
    // The CLI parser joins a repeated --suite with commas.
    expect(parseBenchOptions(options([["suite", "fork,uffdio"]])).suites).toEqual(["uffdio", "fork"]);
    expect(parseSuites("walk, walk ,explore")).toEqual(["walk", "explore"]);
    expect(parseSuites(SUITE_NAMES.join(","))).toEqual([...SUITE_NAMES]);
  });

  it("rejects an unknown suite", () => {
    expect(usageMessage([["suite", "uffdio,bogus"]])).toBe(`unknown suite "bogus"; choose from ${SUITE_NAMES.join(", ")}`);
  });

  it("rejects an empty suite name", () => {
    expect(usageMessage([["suite", "fork,,walk"]])).toContain("empty suite name");
  });

  it("rejects an unknown format", () => {
    expect(usageMessage([["format", "csv"]])).toBe('unknown --format "csv"; choose from bmf, github, github-bigger, github-smaller');
  });

  it("rejects --output without --format", () => {
    expect(usageMessage([["output", join(directory, "out.json")]])).toBe("option --output requires --format");
  });

  it("rejects an output in a missing directory", () => {
    expect(usageMessage([["json", join(directory, "missing", "out.json")]])).toContain("does not exist");
    expect(usageMessage([["html", join(directory, "missing", "out.html")]])).toContain("invalid --html FILE");
  });

  it("rejects a missing baseline file", () => {
    expect(usageMessage([["baseline", join(directory, "none.json")]])).toContain("baseline report");
  });

  it("rejects --max-regression without --baseline", () => {
    expect(usageMessage([["max-regression", "5%"]])).toBe("option --max-regression requires --baseline");
  });

  it("parses and rejects --max-regression values", () => {
    expect(parseMaxRegression("10%")).toBe(10);
    expect(parseMaxRegression("2.5")).toBe(2.5);
    expect(parseMaxRegression(null)).toBeNull();
    for (const bad of ["-5%", "ten", "5%%", "", "1e3"]) {
      expect(() => parseMaxRegression(bad), bad).toThrow(BenchUsageError);
    }
  });

  it("accepts a full CI invocation", () => {
    const baseline = join(directory, "baseline.json");
    writeJsonReport(baseline, fixtureReport());
    const parsed = parseBenchOptions(options([
      ["quick", true],
      ["suite", "uffdio"],
      ["baseline", baseline],
      ["max-regression", "15%"],
      ["format", "bmf"],
      ["output", join(directory, "bmf.json")],
      ["html", join(directory, "report.html")],
      ["quiet", true],
    ]));
    expect(parsed).toMatchObject({ quick: true, quiet: true, suites: ["uffdio"], baselinePath: baseline, maxRegressionPercent: 15, format: "bmf" });
  });
});

describe("commands", () => {
  afterEach(() => vi.restoreAllMocks());

  function stderrOf(): { text: () => string } {
    let text = "";
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      text += String(chunk);
      return true;
    });
    vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    return { text: () => text };
  }

  it("bench exits 2 with the message before running", async () => {
    const stderr = stderrOf();
    expect(await benchCommand.run(options([["suite", "bogus"]]))).toBe(EXIT_USAGE);
    expect(stderr.text()).toContain('uffd-wasm bench: unknown suite "bogus"');
    expect(stderr.text()).toContain('Run "uffd-wasm bench --help"');
  });

  it("bench exits 2 for a baseline that is not a report", async () => {
    const path = join(directory, "not-a-report.json");
    writeFileSync(path, JSON.stringify({ figures: [] }));
    const stderr = stderrOf();
    expect(await benchCommand.run(options([["baseline", path], ["suite", "walk"], ["quiet", true]]))).toBe(EXIT_USAGE);
    expect(stderr.text()).toContain('expected "schema" 1 or 2');
  });

  it("compare exits 2 without two reports", async () => {
    const stderr = stderrOf();
    expect(await compareCommand.run(options([["BASELINE", join(directory, "a.json")]]))).toBe(EXIT_USAGE);
    expect(stderr.text()).toContain("expected two reports: compare BASELINE CURRENT");
  });

  it("compare exits 2 for a missing or invalid file", async () => {
    const valid = join(directory, "valid.json");
    writeJsonReport(valid, fixtureReport());
    const broken = join(directory, "broken.json");
    writeFileSync(broken, "{ not json");
    const stderr = stderrOf();
    expect(await compareCommand.run(options([["BASELINE", valid], ["CURRENT", join(directory, "absent.json")]]))).toBe(EXIT_USAGE);
    expect(stderr.text()).toContain("absent.json not found");
    expect(await compareCommand.run(options([["BASELINE", broken], ["CURRENT", valid]]))).toBe(EXIT_USAGE);
    expect(stderr.text()).toContain("is not valid JSON");
    expect(await compareCommand.run(options([["BASELINE", valid], ["CURRENT", valid], ["max-regression", "x"]]))).toBe(EXIT_USAGE);
    expect(stderr.text()).toContain('invalid --max-regression "x"');
  });

  it("declares its options like src/cli.ts commands", () => {
    for (const command of [benchCommand, compareCommand]) {
      const names = command.options.map((option) => option.name);
      expect(new Set(names).size).toBe(names.length);
      expect(names).toContain("help");
      for (const option of command.options) expect(option.description.length).toBeGreaterThan(0);
    }
    expect(compareCommand.positionals?.map((positional) => positional.name)).toEqual(["BASELINE", "CURRENT"]);
    expect(benchCommand.options.find((option) => option.name === "suite")?.repeatable).toBe(true);
  });
});
