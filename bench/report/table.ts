// The human-readable report: one table of figures grouped by suite, each
// with its deterministic counts below it, the goodput-against-event-rate
// matrix of the contention suite, then the targets with PASS/MISS.

import type { Figure } from "../stats.js";
import { EVENT_KINDS, UNCONTENDED_ID, contentionId, eagainPerThousandPages } from "../suites/contention.js";
import type { TargetResult } from "../targets.js";
import type { BenchReport } from "./json.js";
import { formatRatio, formatSpread, formatValue } from "./format.js";

const HEADERS = ["name", "value", "unit", "spread", "samples", "ratios"] as const;

function ratioCell(figure: Figure): string {
  if (figure.value === null) return `not measured: ${figure.note ?? "unknown reason"}`;
  return (figure.ratios ?? []).map((ratio) => `${formatRatio(ratio.value)} × ${ratio.against}`).join("; ");
}

function countsLine(figure: Figure): string | null {
  if (figure.counts === undefined) return null;
  const parts = Object.entries(figure.counts).map(([key, value]) => `${key}=${value}`);
  return parts.length > 0 ? `counts per sample: ${parts.join(" ")}` : null;
}

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

/** Renders rows of cells as aligned columns; `rightAligned` holds column indexes. */
export function renderColumns(rows: readonly (readonly string[])[], rightAligned: ReadonlySet<number>, indent = "  "): string[] {
  const columns = Math.max(...rows.map((row) => row.length));
  const widths = Array.from({ length: columns }, (_, column) => Math.max(...rows.map((row) => (row[column] ?? "").length)));
  return rows.map((row) => indent + row.map((cell, column) => (column === row.length - 1 ? cell : pad(cell, widths[column]!, rightAligned.has(column)))).join("  ").trimEnd());
}

/** Renders the goodput-against-event-rate matrix, or no lines when the contention suite did not run. */
export function renderContentionMatrix(figures: readonly Figure[]): string[] {
  const byId = new Map(figures.map((figure) => [figure.id, figure]));
  const uncontended = byId.get(UNCONTENDED_ID);
  if (uncontended === undefined) return [];
  const rates = [...new Set(figures.map((figure) => /^contention\.[a-z]+\.every_(\d+)$/.exec(figure.id)?.[1]).filter((rate) => rate !== undefined))]
    .map(Number)
    .sort((a, b) => a - b);
  const header = ["event", ...rates.map((every) => `every ${every} pages`)];
  const rows: string[][] = [header];
  for (const kind of EVENT_KINDS) {
    rows.push([
      kind,
      ...rates.map((every) => {
        const figure = byId.get(contentionId(kind, every));
        if (figure?.value == null) return "-";
        const ratio = figure.ratios?.find((r) => r.referenceId === UNCONTENDED_ID)?.value;
        const eagain = eagainPerThousandPages(figure);
        return `${figure.value.toFixed(2)} GB/s ${ratio === undefined ? "" : `${ratio.toFixed(2)}×`} ${eagain === null ? "" : `${eagain.toFixed(2)} EAGAIN/1k`}`.trim();
      }),
    ]);
  }
  const base = uncontended.value === null ? "not measured" : `${uncontended.value.toFixed(2)} GB/s`;
  return [
    "",
    `goodput against event rate (GB/s, ratio to no events = ${base}, EAGAIN retries per 1000 copied pages)`,
    ...renderColumns(rows, new Set()),
  ];
}

/** Formats a target's ratio with one more digit than the threshold, so 0.898 does not print as 0.90. */
export function formatTargetRatio(ratio: number): string {
  if (ratio >= 100) return ratio.toFixed(0);
  if (ratio >= 10) return ratio.toFixed(1);
  return ratio.toFixed(3);
}

/** Renders the targets section. */
export function renderTargets(targets: readonly TargetResult[]): string[] {
  const lines = ["", "targets"];
  const rows = targets.map((target) => {
    const explained = target.status !== "PASS" && target.note !== undefined;
    const sign = target.comparison === "at most" ? "≤" : "≥";
    return [
      target.status,
      target.ratio === null ? "-" : formatTargetRatio(target.ratio),
      `${sign} ${formatRatio(target.threshold)}`,
      `${target.description}${explained ? ` (${target.note})` : ""}`,
    ];
  });
  lines.push(...renderColumns(rows, new Set([1])));
  return lines;
}

/** Renders the figures and targets of `report` as plain text lines. */
export function renderTable(report: BenchReport): string {
  const { metadata, figures, targets, errors, skipped } = report;
  const machine = metadata.machine;
  const lines = [
    `uffd-wasm ${metadata.package.version} bench (${metadata.mode}): Node ${metadata.node}, ${machine.os} ${machine.release} ${machine.arch}, ${machine.cpuModel} (${machine.cores} cores), wasm sha256 ${metadata.wasmSha256.slice(0, 12)}`,
    "value: from the median sample (GB/s = 10^9 bytes/s); spread: 95 % relative margin of error of the mean sample time; ratios: larger is better",
  ];
  const groups = [...new Set(figures.map((figure) => figure.group))];
  for (const group of groups) {
    const members = figures.filter((figure) => figure.group === group);
    const rows = [
      [...HEADERS],
      ...members.map((figure) => [figure.name, formatValue(figure.value), figure.unit, formatSpread(figure.spread), String(figure.samples), ratioCell(figure)]),
    ];
    const rendered = renderColumns(rows, new Set([1, 3, 4]));
    lines.push("", group, rendered[0]!);
    members.forEach((figure, index) => {
      lines.push(rendered[index + 1]!);
      const counts = countsLine(figure);
      if (counts !== null) lines.push(`      ${counts}`);
      if (figure.value !== null && figure.note !== undefined) lines.push(`      note: ${figure.note}`);
    });
  }
  lines.push(...renderContentionMatrix(figures));
  if (targets.length > 0) lines.push(...renderTargets(targets));
  if (skipped.length > 0) {
    lines.push("", "skipped");
    for (const skip of skipped) lines.push(`  ${skip.suite}: ${skip.reason}`);
  }
  if (errors.length > 0) {
    lines.push("", "errors");
    for (const error of errors) lines.push(`  ${error.suite}: ${error.message}`);
  }
  return lines.join("\n") + "\n";
}
