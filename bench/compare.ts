// The regression check: compares two reports figure by figure.
//
// A figure regresses when it got worse (lower where higher is better, or
// the reverse) by more than the allowed regression plus the combined spread
// of the two runs. The combined spread is sqrt(a² + b²) of their 95 %
// relative margins of error, so a change inside the noise of either run never
// counts. A figure with no spread (a single sample, such as peak memory) is
// judged against the allowed regression alone.
// Deterministic counts must match exactly: any difference fails the check,
// named.

import type { Figure } from "./stats.js";
import type { BenchReport } from "./report/json.js";
import { formatValue } from "./report/format.js";

export type ChangeStatus =
  | "regression" | "improvement" | "unchanged" | "new" | "removed" | "not measured" | "host changed";

/**
 * Figures of the native anchors (ids starting "native."): they time this
 * machine's libc and kernel, not uffd-wasm, so a change in them is listed
 * ("host changed") but never fails the check.
 */
function isAnchor(id: string): boolean {
  return id.startsWith("native.");
}

export interface FigureChange {
  id: string;
  name: string;
  unit: string;
  baseline: number | null;
  current: number | null;
  /** Relative change in percent, positive when the figure got better; null when either value is missing. */
  changePercent: number | null;
  /** Combined spread of the two runs in percent; null when either is unknown. */
  noisePercent: number | null;
  status: ChangeStatus;
}

export interface CountChange {
  figureId: string;
  count: string;
  baseline: number | null;
  current: number | null;
}

export interface Comparison {
  /** The allowed regression, in percent. */
  maxRegressionPercent: number;
  changes: FigureChange[];
  countChanges: CountChange[];
  /** Differences of the run configuration that make the figures incomparable (mode, wasm hash, ...). */
  warnings: string[];
  /** True when no figure regressed and no count changed. */
  passed: boolean;
}

function combinedSpread(a: Figure, b: Figure): number | null {
  if (a.spread === null || b.spread === null || !Number.isFinite(a.spread) || !Number.isFinite(b.spread)) return null;
  if (a.samples < 2 || b.samples < 2) return null;
  return Math.sqrt(a.spread ** 2 + b.spread ** 2);
}

function compareFigure(baseline: Figure, current: Figure, maxRegressionPercent: number): FigureChange {
  const change: FigureChange = {
    id: current.id,
    name: current.name,
    unit: current.unit,
    baseline: baseline.value,
    current: current.value,
    changePercent: null,
    noisePercent: combinedSpread(baseline, current),
    status: "not measured",
  };
  if (baseline.value === null || current.value === null || baseline.value === 0) return change;
  const relative = ((current.value - baseline.value) / Math.abs(baseline.value)) * 100;
  change.changePercent = current.better === "higher" ? relative : -relative;
  const margin = maxRegressionPercent + (change.noisePercent ?? 0);
  if (change.changePercent < -margin) change.status = "regression";
  else if (change.changePercent > margin) change.status = "improvement";
  else change.status = "unchanged";
  return change;
}

function compareCounts(baseline: Figure, current: Figure): CountChange[] {
  const before = baseline.counts ?? {};
  const after = current.counts ?? {};
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  return keys
    .filter((key) => before[key] !== after[key])
    .map((key) => ({ figureId: current.id, count: key, baseline: before[key] ?? null, current: after[key] ?? null }));
}

function configurationWarnings(baseline: BenchReport, current: BenchReport): string[] {
  const warnings: string[] = [];
  const a = baseline.metadata;
  const b = current.metadata;
  if (a?.mode !== b?.mode) warnings.push(`the runs differ in mode (${a?.mode ?? "unknown"} vs ${b?.mode ?? "unknown"}): their counts cannot match`);
  if (a?.wasmSha256 !== b?.wasmSha256) warnings.push(`the wasm binaries differ (${a?.wasmSha256?.slice(0, 12) ?? "unknown"} vs ${b?.wasmSha256?.slice(0, 12) ?? "unknown"})`);
  if (a?.machine?.cpuModel !== b?.machine?.cpuModel) warnings.push(`the runs were on different CPUs (${a?.machine?.cpuModel ?? "unknown"} vs ${b?.machine?.cpuModel ?? "unknown"})`);
  if (a?.node !== b?.node) warnings.push(`the runs used different Node versions (${a?.node ?? "unknown"} vs ${b?.node ?? "unknown"})`);
  return warnings;
}

/**
 * Compares `current` with `baseline`. `maxRegressionPercent` is the allowed
 * worsening of a figure beyond the noise, in percent.
 */
export function compareReports(baseline: BenchReport, current: BenchReport, maxRegressionPercent: number): Comparison {
  const before = new Map(baseline.figures.map((figure) => [figure.id, figure]));
  const after = new Map(current.figures.map((figure) => [figure.id, figure]));
  const changes: FigureChange[] = [];
  const countChanges: CountChange[] = [];
  for (const figure of current.figures) {
    const old = before.get(figure.id);
    if (old === undefined) {
      changes.push({ id: figure.id, name: figure.name, unit: figure.unit, baseline: null, current: figure.value, changePercent: null, noisePercent: null, status: "new" });
      continue;
    }
    const change = compareFigure(old, figure, maxRegressionPercent);
    if (isAnchor(figure.id) && (change.status === "regression" || change.status === "improvement")) change.status = "host changed";
    changes.push(change);
    if (!isAnchor(figure.id)) countChanges.push(...compareCounts(old, figure));
  }
  // A figure of a suite the current run selected that is missing from it
  // fails the check: a suite must not drop figures unnoticed. Figures of
  // suites the run did not select, and native anchors it did not need, are
  // left out of the comparison.
  const selected = new Set(current.metadata.suites);
  let lost = false;
  for (const figure of baseline.figures) {
    if (after.has(figure.id) || isAnchor(figure.id) || !selected.has(figure.suite)) continue;
    lost = true;
    changes.push({ id: figure.id, name: figure.name, unit: figure.unit, baseline: figure.value, current: null, changePercent: null, noisePercent: null, status: "removed" });
  }
  const passed = !lost && !changes.some((change) => change.status === "regression") && countChanges.length === 0;
  return { maxRegressionPercent, changes, countChanges, warnings: configurationWarnings(baseline, current), passed };
}

function signed(percent: number | null): string {
  if (percent === null) return "-";
  return `${percent >= 0 ? "+" : ""}${percent.toFixed(1)}%`;
}

/**
 * Renders the comparison as text: the regressions, improvements and count
 * changes first, then a line per unchanged figure when `all` is set.
 */
export function renderComparison(comparison: Comparison, labels: { baseline: string; current: string }, all = false): string {
  const lines = [
    `regression check: ${labels.current} against ${labels.baseline}; a figure regresses when it is worse by more than ${comparison.maxRegressionPercent}% plus the combined spread`,
  ];
  for (const warning of comparison.warnings) lines.push(`  warning: ${warning}`);
  const listed = comparison.changes.filter((change) => all || change.status !== "unchanged");
  if (listed.length > 0) {
    const rows = listed.map((change) => [
      change.status.toUpperCase(),
      change.id,
      `${formatValue(change.baseline)} → ${formatValue(change.current)} ${change.unit}`,
      signed(change.changePercent),
      change.noisePercent === null ? "-" : `±${change.noisePercent.toFixed(1)}%`,
    ]);
    const headers = ["status", "figure", "baseline → current", "change (+ is better)", "noise"];
    const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => row[column]!.length)));
    const render = (cells: readonly string[]) => "  " + cells.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd();
    lines.push("", render(headers), ...rows.map(render));
  }
  const unchanged = comparison.changes.filter((change) => change.status === "unchanged").length;
  const single = comparison.changes.filter((change) => change.status === "unchanged" && change.noisePercent === null).length;
  lines.push("", `${unchanged} figure(s) unchanged within the threshold and the noise (${single} of them single samples, judged on the threshold alone)`);
  if (comparison.countChanges.length > 0) {
    lines.push("", "deterministic counts that changed (each fails the check):");
    for (const change of comparison.countChanges) {
      lines.push(`  ${change.figureId}: ${change.count} ${change.baseline ?? "absent"} → ${change.current ?? "absent"}`);
    }
  }
  const regressions = comparison.changes.filter((change) => change.status === "regression").map((change) => change.id);
  if (comparison.passed) lines.push("", "result: PASS");
  else {
    const reasons: string[] = [];
    if (regressions.length > 0) reasons.push(`regressed: ${regressions.join(", ")}`);
    const removed = comparison.changes.filter((change) => change.status === "removed").map((change) => change.id);
    if (regressions.length === 0 && comparison.countChanges.length === 0 && removed.length > 0) {
      reasons.push(`missing from the current run: ${removed.join(", ")}`);
    }
    if (comparison.countChanges.length > 0) reasons.push(`counts changed in: ${[...new Set(comparison.countChanges.map((change) => change.figureId))].join(", ")}`);
    lines.push("", `result: FAIL (${reasons.join("; ")})`);
  }
  return lines.join("\n") + "\n";
}
