// The two formats CI benchmark trackers read.
//
// Bencher Metric Format (bencher.dev, "json" adapter): an object keyed by
// benchmark name, each a map of measure slug to { value, lower_value?,
// upper_value? }. Benchmark name: the figure id; measure: a slug of the unit
// ("gb-per-s", "ns-per-pte"); bounds: the value ± its spread.
//
// github-action-benchmark (tools customBiggerIsBetter and
// customSmallerIsBetter): each tool reads an array of { name, unit, value,
// range?, extra? }, with range and extra as strings. A figure goes to the
// array of its direction. Format "github" writes both arrays in one object
// keyed by tool name; "github-bigger" and "github-smaller" write one array
// each, the file the action's output-file-path reads.

import type { Figure } from "../stats.js";
import type { BenchReport } from "./json.js";

export interface BmfMetric {
  value: number;
  lower_value?: number;
  upper_value?: number;
}

export type BmfDocument = Record<string, Record<string, BmfMetric>>;

export interface GithubBenchmarkEntry {
  name: string;
  unit: string;
  value: number;
  range?: string;
  extra?: string;
}

export interface GithubBenchmarkDocument {
  customBiggerIsBetter: GithubBenchmarkEntry[];
  customSmallerIsBetter: GithubBenchmarkEntry[];
}

export const OUTPUT_FORMATS = ["bmf", "github", "github-bigger", "github-smaller"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Turns a unit into a measure slug of lowercase letters, digits and dashes: "GB/s" → "gb-per-s", "µs/fault" → "us-per-fault". */
export function measureSlug(unit: string): string {
  const slug = unit
    .replace(/µ/g, "u")
    .replace(/×/g, "times")
    .replace(/\//g, "-per-")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return slug.length > 0 ? slug.slice(0, 64) : "value";
}

/** Returns the figures that have a finite value; the others cannot be tracked. */
function measuredFigures(report: BenchReport): (Figure & { value: number })[] {
  return report.figures.filter((figure): figure is Figure & { value: number } => figure.value !== null && Number.isFinite(figure.value));
}

/** Returns the absolute half-width of a figure's spread, or null when its spread is unknown. */
function halfWidth(figure: Figure & { value: number }): number | null {
  return figure.spread === null || !Number.isFinite(figure.spread) ? null : (Math.abs(figure.value) * figure.spread) / 100;
}

export function toBmf(report: BenchReport): BmfDocument {
  const document: BmfDocument = {};
  for (const figure of measuredFigures(report)) {
    const metric: BmfMetric = { value: figure.value };
    const width = halfWidth(figure);
    if (width !== null) {
      metric.lower_value = figure.value - width;
      metric.upper_value = figure.value + width;
    }
    (document[figure.id] ??= {})[measureSlug(figure.unit)] = metric;
  }
  return document;
}

/** Formats a figure's counts as "key=value" pairs for the extra field. */
function extraText(figure: Figure): string {
  const parts: string[] = [figure.name];
  if (figure.counts !== undefined) parts.push(Object.entries(figure.counts).map(([key, value]) => `${key}=${value}`).join(" "));
  parts.push(`samples=${figure.samples}`);
  return parts.join("\n");
}

export function toGithub(report: BenchReport): GithubBenchmarkDocument {
  const document: GithubBenchmarkDocument = { customBiggerIsBetter: [], customSmallerIsBetter: [] };
  for (const figure of measuredFigures(report)) {
    const entry: GithubBenchmarkEntry = { name: figure.id, unit: figure.unit, value: figure.value };
    const width = halfWidth(figure);
    // Plain digits: three significant ones, or whole units above 100 (toPrecision would switch to 1.23e+6).
    if (width !== null) entry.range = `± ${width >= 100 ? Math.round(width) : Number(width.toPrecision(3))}`;
    entry.extra = extraText(figure);
    (figure.better === "higher" ? document.customBiggerIsBetter : document.customSmallerIsBetter).push(entry);
  }
  return document;
}

/** Renders `report` in `format` as a JSON document with a trailing newline. */
export function renderCiFormat(report: BenchReport, format: OutputFormat): string {
  let document: unknown;
  if (format === "bmf") document = toBmf(report);
  else if (format === "github") document = toGithub(report);
  else if (format === "github-bigger") document = toGithub(report).customBiggerIsBetter;
  else document = toGithub(report).customSmallerIsBetter;
  return JSON.stringify(document, null, 2) + "\n";
}
