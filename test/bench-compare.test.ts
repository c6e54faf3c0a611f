// The regression check: figures against threshold plus noise, exact
// deterministic counts, the compare command, and a real saved run compared
// with itself. Nothing here asserts a timing.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { compareCommand } from "../bench/commands.js";
import { compareReports, renderComparison } from "../bench/compare.js";
import { benchConfig } from "../bench/config.js";
import { readJsonReport, writeJsonReport } from "../bench/report/json.js";
import { runBench } from "../bench/runner.js";
import { cloneReport, defaultFigures, figure, fixtureReport } from "./bench-helpers.js";

const directory = mkdtempSync(join(tmpdir(), "uffd-bench-compare-"));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

function figureOf(report: ReturnType<typeof fixtureReport>, id: string) {
  const found = report.figures.find((figure) => figure.id === id);
  if (found === undefined) throw new Error(`fixture has no figure ${id}`);
  return found;
}

/** Runs a command with stdout and stderr captured; returns the exit code and the text. */
async function capture(run: () => Promise<number>): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    return { code: await run(), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

describe("compareReports", () => {
  it("fails on a figure its suite dropped", () => {
    const baseline = fixtureReport();
    const current = cloneReport(baseline);
    current.figures = current.figures.filter((item) => item.id !== "uffdio.copy.per_call_64");
    const comparison = compareReports(baseline, current, 10);
    expect(comparison.passed).toBe(false);
    expect(renderComparison(comparison, { baseline: "a", current: "b" })).toContain("missing from the current run: uffdio.copy.per_call_64");
  });

  it("only lists figures of unselected suites", () => {
    const baseline = fixtureReport();
    const current = cloneReport(baseline);
    current.metadata.suites = ["fork", "contention"];
    current.figures = current.figures.filter((item) => !item.id.startsWith("uffdio."));
    expect(compareReports(baseline, current, 10).passed).toBe(true);
  });

  it("lists a native anchor change without failing", () => {
    const anchor = figure({ id: "native.kernel.uffdio_copy.per_call_1", value: 2.2, spread: 1, counts: { ioctls: 65536 } });
    const baseline = fixtureReport([...defaultFigures().slice(0, 1), anchor]);
    const current = cloneReport(baseline);
    figureOf(current, anchor.id).value = 2.2 * 0.5;
    figureOf(current, anchor.id).counts = { ioctls: 65537 };
    const comparison = compareReports(baseline, current, 10);
    expect(comparison.passed).toBe(true);
    expect(comparison.changes.find((change) => change.id === anchor.id)?.status).toBe("host changed");
    expect(comparison.countChanges).toEqual([]);
  });

  it("passes a run compared with itself", () => {
    const report = fixtureReport();
    const comparison = compareReports(report, cloneReport(report), 10);
    expect(comparison.passed).toBe(true);
    expect(comparison.countChanges).toEqual([]);
    expect(comparison.changes.filter((change) => change.status === "regression")).toEqual([]);
  });

  it("fails a throughput edited down by 30% and names it", () => {
    const baseline = fixtureReport();
    const current = cloneReport(baseline);
    figureOf(current, "uffdio.copy.per_call_64").value! *= 0.7;
    const comparison = compareReports(baseline, current, 10);
    expect(comparison.passed).toBe(false);
    const regressions = comparison.changes.filter((change) => change.status === "regression").map((change) => change.id);
    expect(regressions).toEqual(["uffdio.copy.per_call_64"]);
    const text = renderComparison(comparison, { baseline: "a.json", current: "b.json" });
    expect(text).toContain("REGRESSION");
    expect(text).toContain("result: FAIL (regressed: uffdio.copy.per_call_64)");
  });

  it("fails a cost edited up by 30%", () => {
    const baseline = fixtureReport();
    const current = cloneReport(baseline);
    figureOf(current, "fork.copy_page_range.present_16384").value! *= 1.3;
    const comparison = compareReports(baseline, current, 10);
    expect(comparison.passed).toBe(false);
    const change = comparison.changes.find((entry) => entry.id === "fork.copy_page_range.present_16384");
    expect(change?.status).toBe("regression");
    expect(change?.changePercent).toBeCloseTo(-30, 6);
  });

  it("counts a cost edited down by 30% as an improvement", () => {
    const baseline = fixtureReport();
    const current = cloneReport(baseline);
    figureOf(current, "fork.copy_page_range.present_16384").value! *= 0.7;
    const comparison = compareReports(baseline, current, 10);
    expect(comparison.passed).toBe(true);
    expect(comparison.changes.find((entry) => entry.id === "fork.copy_page_range.present_16384")?.status).toBe("improvement");
  });

  it("ignores a change inside threshold plus noise", () => {
    const baseline = fixtureReport();
    const current = cloneReport(baseline);
    // 15% worse, with spreads of ±5% in both runs: 10% + sqrt(50)% is about 17%.
    figureOf(baseline, "uffdio.copy.per_call_64").spread = 5;
    figureOf(current, "uffdio.copy.per_call_64").spread = 5;
    figureOf(current, "uffdio.copy.per_call_64").value! *= 0.85;
    const comparison = compareReports(baseline, current, 10);
    expect(comparison.passed).toBe(true);
    const change = comparison.changes.find((entry) => entry.id === "uffdio.copy.per_call_64");
    expect(change?.status).toBe("unchanged");
    expect(change?.noisePercent).toBeCloseTo(Math.sqrt(50), 6);
  });

  it("judges a single sample on the threshold", () => {
    const baseline = fixtureReport();
    // first_touch is in µs per page, so lower is better: tripling it regresses.
    const worse = cloneReport(baseline);
    figureOf(worse, "copy.first_touch").value! *= 3;
    const failed = compareReports(baseline, worse, 10);
    expect(failed.passed).toBe(false);
    const change = failed.changes.find((entry) => entry.id === "copy.first_touch");
    expect(change?.status).toBe("regression");
    expect(change?.noisePercent).toBeNull();
    expect(change?.changePercent).toBeCloseTo(-200, 6);
    // Within the threshold it stays unchanged.
    const close = cloneReport(baseline);
    figureOf(close, "copy.first_touch").value! *= 1.05;
    expect(compareReports(baseline, close, 10).passed).toBe(true);
  });

  it("fails a changed deterministic count and names it", () => {
    const baseline = fixtureReport();
    const current = cloneReport(baseline);
    figureOf(current, "contention.fork.every_4096").counts!.eagainRetries = 16;
    const comparison = compareReports(baseline, current, 10);
    expect(comparison.passed).toBe(false);
    expect(comparison.countChanges).toEqual([{ figureId: "contention.fork.every_4096", count: "eagainRetries", baseline: 15, current: 16 }]);
    const text = renderComparison(comparison, { baseline: "a.json", current: "b.json" });
    expect(text).toContain("contention.fork.every_4096: eagainRetries 15 → 16");
    expect(text).toContain("counts changed in: contention.fork.every_4096");
  });

  it("fails a count that appears or disappears", () => {
    const baseline = fixtureReport();
    const current = cloneReport(baseline);
    delete figureOf(current, "uffdio.copy.per_call_64").counts!.ioctls;
    figureOf(current, "uffdio.copy.per_call_64").counts!.faults = 0;
    const comparison = compareReports(baseline, current, 10);
    expect(comparison.passed).toBe(false);
    expect(comparison.countChanges).toContainEqual({ figureId: "uffdio.copy.per_call_64", count: "ioctls", baseline: 256, current: null });
    expect(comparison.countChanges).toContainEqual({ figureId: "uffdio.copy.per_call_64", count: "faults", baseline: null, current: 0 });
  });

  it("lists a renamed figure as removed and new", () => {
    const baseline = fixtureReport();
    const current = cloneReport(baseline);
    const moved = current.figures.shift()!;
    current.figures.push({ ...moved, id: "uffdio.copy.per_call_128" });
    const comparison = compareReports(baseline, current, 10);
    // The old figure is gone from a suite the run selected, so the check fails.
    expect(comparison.passed).toBe(false);
    expect(comparison.changes.find((entry) => entry.id === "uffdio.copy.per_call_64")?.status).toBe("removed");
    expect(comparison.changes.find((entry) => entry.id === "uffdio.copy.per_call_128")?.status).toBe("new");
  });

  it("warns when the runs differ in mode", () => {
    const baseline = fixtureReport();
    const current = cloneReport(baseline);
    current.metadata.mode = "full";
    expect(compareReports(baseline, current, 10).warnings[0]).toContain("differ in mode");
  });
});

describe("compare command", () => {
  afterEach(() => vi.restoreAllMocks());

  it("exits 0 for a saved run against itself", async () => {
    const path = join(directory, "self.json");
    writeJsonReport(path, fixtureReport());
    const result = await capture(() => compareCommand.run(new Map([["BASELINE", path], ["CURRENT", path]])));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("result: PASS");
  });

  it("exits 1 and names the regressed figure", async () => {
    const baseline = fixtureReport();
    const current = cloneReport(baseline);
    figureOf(current, "uffdio.zeropage.per_call_64").value! *= 0.7;
    const a = join(directory, "a.json");
    const b = join(directory, "b.json");
    writeJsonReport(a, baseline);
    writeJsonReport(b, current);
    const result = await capture(() => compareCommand.run(new Map([["BASELINE", a], ["CURRENT", b]])));
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("regressed: uffdio.zeropage.per_call_64");
  });

  it("applies --max-regression", async () => {
    const baseline = fixtureReport();
    const current = cloneReport(baseline);
    figureOf(current, "uffdio.zeropage.per_call_64").value! *= 0.7;
    const a = join(directory, "loose-a.json");
    const b = join(directory, "loose-b.json");
    writeJsonReport(a, baseline);
    writeJsonReport(b, current);
    const result = await capture(() => compareCommand.run(new Map([["BASELINE", a], ["CURRENT", b], ["max-regression", "40%"]])));
    expect(result.code).toBe(0);
  });

  it("reads a schema 1 report", async () => {
    const path = join(directory, "schema1.json");
    const old = fixtureReport();
    const figures = old.figures.map(({ better: _better, suite: _suite, ...rest }) => rest);
    writeFileSync(path, JSON.stringify({ ...old, schema: 1, figures, skipped: undefined }));
    const report = readJsonReport(path);
    expect(report.figures.find((entry) => entry.id === "fork.copy_page_range.present_16384")?.better).toBe("lower");
    expect(report.figures.find((entry) => entry.id === "uffdio.copy.per_call_64")?.suite).toBe("uffdio");
  });
});

describe("saved run", () => {
  it("passes the check against itself", async () => {
    const path = join(directory, "walk.json");
    const config = { ...benchConfig(true), walkPages: 4096, timing: { time: 5, iterations: 2, warmupTime: 1, warmupIterations: 1 } };
    const run = await capture(() => runBench({ quick: true, jsonPath: path, suites: ["walk"], quiet: true, configOverride: config }));
    expect(run.code).toBe(0);
    const saved = JSON.parse(readFileSync(path, "utf8")) as { schema: number; figures: { id: string; counts?: Record<string, number> }[] };
    expect(saved.schema).toBe(2);
    expect(saved.figures.find((entry) => entry.id === "walk.sequential")?.counts?.ptesVisited).toBe(4096);
    const check = await capture(() => runBench({ quick: true, jsonPath: null, suites: ["walk"], quiet: true, configOverride: config, baselinePath: path, maxRegressionPercent: 1000 }));
    expect(check.code).toBe(0);
    expect(check.stdout).toContain("result: PASS");
    const self = await capture(() => compareCommand.run(new Map([["BASELINE", path], ["CURRENT", path]])));
    expect(self.code).toBe(0);
  });
});
