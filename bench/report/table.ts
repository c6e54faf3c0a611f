// The human-readable report: one table of figures grouped by suite, each
// with its deterministic counts below it, then the targets with PASS/MISS.

import type { Figure } from "../stats.js";
import type { TargetResult } from "../targets.js";
import type { BenchReport } from "./json.js";
import { formatRatio, formatSpread, formatValue } from "./format.js";

const HEADERS = ["name", "value", "unit", "spread", "samples", "ratio / target"] as const;

function ratioCell(figure: Figure, target: TargetResult | undefined): string {
  if (figure.value === null) return `not measured: ${figure.note ?? "unknown reason"}`;
  let text = figure.ratio ? `${formatRatio(figure.ratio.value)} × ${figure.ratio.against}` : "";
  if (target !== undefined) {
    text += `${text ? " " : ""}(target ≥ ${formatRatio(target.threshold)}: ${target.status})`;
  }
  return text;
}

function countsLine(figure: Figure, previous: Figure | undefined): string | null {
  if (figure.counts === undefined) return null;
  // A second unit of the same measurement (pages/s beside GB/s) shares its counts.
  if (previous?.name === figure.name && JSON.stringify(previous.counts) === JSON.stringify(figure.counts)) return null;
  const parts = Object.entries(figure.counts).map(([key, value]) => `${key}=${value}`);
  return parts.length > 0 ? `counts per sample: ${parts.join(" ")}` : null;
}

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

/** Renders the figures and targets of `report` as plain text lines. */
export function renderTable(report: BenchReport): string {
  const { metadata, figures, targets, errors } = report;
  const targetByFigure = new Map(targets.map((target) => [target.figureId, target]));
  const rows = figures.map((figure) => ({
    figure,
    cells: [
      figure.name,
      formatValue(figure.value),
      figure.unit,
      formatSpread(figure.spread),
      String(figure.samples),
      ratioCell(figure, targetByFigure.get(figure.id)),
    ],
  }));
  const widths = HEADERS.map((header, column) => Math.max(header.length, ...rows.map((row) => row.cells[column]!.length)));
  const rightAligned = new Set([1, 3, 4]);
  const renderRow = (cells: readonly string[]) =>
    "  " + cells.map((cell, column) => (column === cells.length - 1 ? cell : pad(cell, widths[column]!, rightAligned.has(column)))).join("  ");

  const machine = metadata.machine;
  const lines = [
    `uffd-wasm ${metadata.package.version} bench (${metadata.mode}): Node ${metadata.node}, ${machine.os} ${machine.arch}, ${machine.cpuModel} (${machine.cores} cores), wasm sha256 ${metadata.wasmSha256.slice(0, 12)}`,
    "value: from the median sample (GB/s = 10^9 bytes/s); spread: 95 % relative margin of error of the mean sample time",
  ];
  let group: string | null = null;
  let previous: Figure | undefined;
  for (const row of rows) {
    if (row.figure.group !== group) {
      group = row.figure.group;
      lines.push("", group, renderRow(HEADERS));
    }
    lines.push(renderRow(row.cells).trimEnd());
    const counts = countsLine(row.figure, previous);
    if (counts !== null) lines.push(`      ${counts}`);
    if (row.figure.value !== null && row.figure.note !== undefined) lines.push(`      note: ${row.figure.note}`);
    previous = row.figure;
  }

  lines.push("", "targets");
  const ratioWidth = Math.max(...targets.map((target) => (target.ratio === null ? 1 : formatRatio(target.ratio).length)));
  for (const target of targets) {
    const ratio = pad(target.ratio === null ? "-" : formatRatio(target.ratio), ratioWidth, true);
    const explained = target.status !== "PASS" && target.note !== undefined;
    const note = explained ? ` (${target.note})` : "";
    lines.push(`  ${pad(target.status, 4)}  ${ratio} ≥ ${pad(formatRatio(target.threshold), 4)}  ${target.description}${note}`);
  }
  if (errors.length > 0) {
    lines.push("", "errors");
    for (const error of errors) lines.push(`  ${error.suite}: ${error.message}`);
  }
  return lines.join("\n") + "\n";
}
