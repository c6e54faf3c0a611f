// The HTML report: one self-contained page (inline CSS and SVG, no scripts,
// no external assets) with the run metadata, the targets, every figure by
// group, and two charts: throughput per copy variant, and goodput against
// event rate.

import type { Figure } from "../stats.js";
import { COPY_VARIANTS, VARIANT_NAMES, copyFigureId } from "../suites/copy-kernels.js";
import { EVENT_KINDS, UNCONTENDED_ID, contentionId, eagainPerThousandPages } from "../suites/contention.js";
import { NATIVE_STREAMING_ID, NATIVE_WARM_ID } from "../native.js";
import type { BenchReport } from "./json.js";
import { formatRatio, formatSpread, formatValue } from "./format.js";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

export function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

interface Bar {
  label: string;
  values: { series: string; value: number | null }[];
}

/** Draws a grouped horizontal bar chart: one group per bar label, one bar per series. */
function barChart(title: string, unit: string, bars: readonly Bar[], series: readonly string[]): string {
  const max = Math.max(1e-9, ...bars.flatMap((bar) => bar.values.map((entry) => entry.value ?? 0)));
  const barHeight = 14;
  const labelWidth = 190;
  const plotWidth = 420;
  const groupHeight = series.length * barHeight + 10;
  const height = bars.length * groupHeight + 40;
  const parts: string[] = [];
  bars.forEach((bar, index) => {
    const top = 30 + index * groupHeight;
    parts.push(`<text x="${labelWidth - 6}" y="${top + (series.length * barHeight) / 2 + 4}" text-anchor="end">${escapeHtml(bar.label)}</text>`);
    bar.values.forEach((entry, s) => {
      const y = top + s * barHeight;
      if (entry.value === null) {
        parts.push(`<text x="${labelWidth + 4}" y="${y + barHeight - 3}" class="muted">${escapeHtml(entry.series)}: not measured</text>`);
        return;
      }
      const width = (entry.value / max) * plotWidth;
      parts.push(`<rect x="${labelWidth}" y="${y}" width="${width.toFixed(1)}" height="${barHeight - 2}" fill="${COLORS[s % COLORS.length]}"><title>${escapeHtml(`${bar.label}, ${entry.series}: ${formatValue(entry.value)} ${unit}`)}</title></rect>`);
      parts.push(`<text x="${(labelWidth + width + 4).toFixed(1)}" y="${y + barHeight - 3}">${formatValue(entry.value)}</text>`);
    });
  });
  const legend = series.map((name, s) => `<rect x="${labelWidth + s * 110}" y="6" width="10" height="10" fill="${COLORS[s % COLORS.length]}"/><text x="${labelWidth + 14 + s * 110}" y="15">${escapeHtml(name)}</text>`);
  return `<figure><figcaption>${escapeHtml(title)} (${escapeHtml(unit)})</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + plotWidth + 60}" height="${height}" role="img">${legend.join("")}${parts.join("")}</svg></figure>`;
}

/** Throughput of every copy variant, warm and streaming, beside native memcpy. */
function copyChart(figures: Map<string, Figure>): string {
  const native = { warm: figures.get(NATIVE_WARM_ID), streaming: figures.get(NATIVE_STREAMING_ID) };
  const bars: Bar[] = [];
  if (native.warm !== undefined || native.streaming !== undefined) {
    bars.push({ label: "native memcpy", values: [{ series: "warm", value: native.warm?.value ?? null }, { series: "streaming", value: native.streaming?.value ?? null }] });
  }
  for (const variant of COPY_VARIANTS) {
    const warm = figures.get(copyFigureId(variant, "warm"));
    const streaming = figures.get(copyFigureId(variant, "streaming"));
    if (warm === undefined && streaming === undefined) continue;
    bars.push({ label: VARIANT_NAMES[variant], values: [{ series: "warm", value: warm?.value ?? null }, { series: "streaming", value: streaming?.value ?? null }] });
  }
  return bars.length === 0 ? "" : barChart("Throughput per copy variant, 4 KiB pages", "GB/s", bars, ["warm", "streaming"]);
}

/** Goodput against event rate: one line per event kind, the uncontended goodput as a dashed line. */
function contentionChart(figureList: readonly Figure[], figures: Map<string, Figure>): string {
  const uncontended = figures.get(UNCONTENDED_ID);
  const intervals = [...new Set(figureList.map((figure) => /^contention\.[a-z]+\.every_(\d+)$/.exec(figure.id)?.[1]).filter((every) => every !== undefined))]
    .map(Number)
    .sort((a, b) => b - a);
  if (uncontended === undefined || intervals.length === 0) return "";
  const values = figureList.filter((figure) => figure.id.startsWith("contention.")).map((figure) => figure.value ?? 0);
  const max = Math.max(1e-9, ...values) * 1.1;
  const left = 60;
  const top = 20;
  const width = 460;
  const height = 240;
  // Events per 1000 pages on a log scale, rarest on the left.
  const rates = intervals.map((every) => 1000 / every);
  const logMin = Math.log10(Math.min(...rates));
  const logMax = Math.log10(Math.max(...rates));
  const x = (rate: number) => left + (logMax === logMin ? width / 2 : ((Math.log10(rate) - logMin) / (logMax - logMin)) * width);
  const y = (value: number) => top + height - (value / max) * height;
  const parts: string[] = [
    `<line x1="${left}" y1="${top + height}" x2="${left + width}" y2="${top + height}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + height}" stroke="#333"/>`,
  ];
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const value = max * fraction;
    parts.push(`<text x="${left - 6}" y="${y(value) + 4}" text-anchor="end">${value.toFixed(1)}</text>`);
  }
  for (const every of intervals) {
    const rate = 1000 / every;
    parts.push(`<text x="${x(rate)}" y="${top + height + 16}" text-anchor="middle">1/${every}</text>`);
  }
  if (uncontended.value !== null) {
    parts.push(`<line x1="${left}" y1="${y(uncontended.value)}" x2="${left + width}" y2="${y(uncontended.value)}" stroke="#777" stroke-dasharray="5,4"><title>no events: ${formatValue(uncontended.value)} GB/s</title></line>`);
  }
  EVENT_KINDS.forEach((kind, index) => {
    const color = COLORS[index % COLORS.length]!;
    const points = intervals
      .map((every) => ({ every, figure: figures.get(contentionId(kind, every)) }))
      .filter((point) => point.figure?.value != null)
      .map((point) => ({ ...point, px: x(1000 / point.every), py: y(point.figure!.value!) }));
    if (points.length === 0) return;
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.map((point) => `${point.px.toFixed(1)},${point.py.toFixed(1)}`).join(" ")}"/>`);
    for (const point of points) {
      const eagain = eagainPerThousandPages(point.figure!);
      const tip = `${kind}, one event per ${point.every} pages: ${formatValue(point.figure!.value)} GB/s${eagain === null ? "" : `, ${eagain.toFixed(2)} EAGAIN per 1000 pages`}`;
      parts.push(`<circle cx="${point.px.toFixed(1)}" cy="${point.py.toFixed(1)}" r="3.5" fill="${color}"><title>${escapeHtml(tip)}</title></circle>`);
    }
    parts.push(`<rect x="${left + width + 16}" y="${top + index * 18}" width="10" height="10" fill="${color}"/><text x="${left + width + 30}" y="${top + index * 18 + 9}">${kind}</text>`);
  });
  parts.push(`<text x="${left + width / 2}" y="${top + height + 34}" text-anchor="middle">events per copied page</text>`);
  return `<figure><figcaption>Goodput against event rate (GB/s; dashed: no events)</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${left + width + 110}" height="${top + height + 44}" role="img">${parts.join("")}</svg></figure>`;
}

function figureTable(figures: readonly Figure[]): string {
  const groups = [...new Set(figures.map((figure) => figure.group))];
  return groups
    .map((group) => {
      const rows = figures
        .filter((figure) => figure.group === group)
        .map((figure) => {
          const ratios = figure.value === null ? `not measured: ${figure.note ?? "unknown reason"}` : (figure.ratios ?? []).map((ratio) => `${formatRatio(ratio.value)} × ${ratio.against}`).join("; ");
          const counts = figure.counts === undefined ? "" : Object.entries(figure.counts).map(([key, value]) => `${key}=${value}`).join(" ");
          return `<tr><td>${escapeHtml(figure.name)}<div class="muted">${escapeHtml(figure.id)}</div></td><td class="num">${formatValue(figure.value)}</td><td>${escapeHtml(figure.unit)}</td><td class="num">${formatSpread(figure.spread)}</td><td class="num">${figure.samples}</td><td>${escapeHtml(ratios)}</td><td class="muted">${escapeHtml(counts)}</td></tr>`;
        });
      return `<h3>${escapeHtml(group)}</h3><table><thead><tr><th>name</th><th>value</th><th>unit</th><th>spread</th><th>samples</th><th>ratios</th><th>counts per sample</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
    })
    .join("\n");
}

export function renderHtml(report: BenchReport): string {
  const { metadata, figures, targets, errors, skipped } = report;
  const byId = new Map(figures.map((figure) => [figure.id, figure]));
  const machine = metadata.machine;
  const targetRows = targets.map((target) => {
    const sign = target.comparison === "at most" ? "≤" : "≥";
    const note = target.status !== "PASS" && target.note ? ` (${target.note})` : "";
    return `<tr class="${target.status.replace("/", "")}"><td>${target.status}</td><td class="num">${target.ratio === null ? "-" : formatRatio(target.ratio)}</td><td>${sign} ${formatRatio(target.threshold)}</td><td>${escapeHtml(target.description + note)}</td></tr>`;
  });
  const problems = [
    ...skipped.map((skip) => `<li>${escapeHtml(`${skip.suite} skipped: ${skip.reason}`)}</li>`),
    ...errors.map((error) => `<li>${escapeHtml(`${error.suite} failed: ${error.message}`)}</li>`),
  ];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>uffd-wasm bench ${escapeHtml(metadata.package.version)} (${metadata.mode})</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #777; font-size: 12px; }
tr.PASS td:first-child { color: #1a7f37; font-weight: bold; }
tr.MISS td:first-child { color: #cf222e; font-weight: bold; }
tr.NA td:first-child { color: #777; }
svg text { font: 11px system-ui, sans-serif; fill: #222; }
svg text.muted { fill: #777; }
figure { margin: 1em 0 2em; }
figcaption { font-weight: bold; margin-bottom: 0.5em; }
</style>
</head>
<body>
<h1>uffd-wasm bench</h1>
<p>${escapeHtml(`${metadata.package.name} ${metadata.package.version}, ${metadata.mode} run of ${metadata.date}, ${metadata.durationSeconds.toFixed(0)} s; Node ${metadata.node}; ${machine.os} ${machine.release} ${machine.arch}, ${machine.cpuModel} (${machine.cores} cores); wasm sha256 ${metadata.wasmSha256}`)}</p>
<p class="muted">Values come from the median sample (GB/s = 10^9 bytes/s); spread is the 95 % relative margin of error of the mean sample time; ratios are oriented so that larger is better.</p>
${problems.length > 0 ? `<ul>${problems.join("")}</ul>` : ""}
<h2>Targets</h2>
<table><thead><tr><th>status</th><th>ratio</th><th>target</th><th>description</th></tr></thead><tbody>${targetRows.join("")}</tbody></table>
<h2>Charts</h2>
${copyChart(byId)}
${contentionChart(figures, byId)}
<h2>Figures</h2>
${figureTable(figures)}
</body>
</html>
`;
}
