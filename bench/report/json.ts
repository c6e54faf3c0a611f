// The JSON report: every figure, the targets and the run metadata. It is
// also the input of the regression check (bench/compare.ts).

import { readFileSync, writeFileSync } from "node:fs";
import type { RunMetadata } from "../metadata.js";
import { directionOfUnit, type Figure } from "../stats.js";
import type { TargetResult } from "../targets.js";

/** A suite that threw: its figures are missing from the report. */
export interface SuiteError {
  suite: string;
  message: string;
}

/** A suite that could not run here, with the one-line reason. */
export interface SuiteSkip {
  suite: string;
  reason: string;
}

export interface BenchReport {
  /** Format version of this JSON document: 2 added Figure.suite, better and ratios, and skipped. */
  schema: 2;
  metadata: RunMetadata;
  figures: Figure[];
  targets: TargetResult[];
  errors: SuiteError[];
  skipped: SuiteSkip[];
}

/** Writes `report` to `path` as indented JSON; throws the file system's error on failure. */
export function writeJsonReport(path: string, report: BenchReport): void {
  writeFileSync(path, JSON.stringify(report, null, 2) + "\n");
}

/** Raised for a file that is not a benchmark report. */
export class ReportFormatError extends Error {
  override name = "ReportFormatError";
}

/**
 * Reads a report written by --json, schema 1 or 2. Figures of schema 1 get
 * their direction from the unit and their suite from the id. Throws the
 * file system's error, or ReportFormatError naming what is wrong.
 */
export function readJsonReport(path: string): BenchReport {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    if (error instanceof SyntaxError) throw new ReportFormatError(`${path} is not valid JSON: ${error.message}`);
    throw error;
  }
  const report = parsed as Omit<Partial<BenchReport>, "schema"> & { schema?: unknown };
  if (typeof parsed !== "object" || parsed === null || (report.schema !== 1 && report.schema !== 2)) {
    throw new ReportFormatError(`${path} is not a uffd-wasm bench report: expected "schema" 1 or 2`);
  }
  if (!Array.isArray(report.figures)) throw new ReportFormatError(`${path} has no "figures" array`);
  report.figures.forEach((figure, index) => {
    if (typeof figure !== "object" || figure === null || typeof figure.id !== "string" || typeof figure.unit !== "string") {
      throw new ReportFormatError(`${path}: figure ${index} has no string "id" and "unit"`);
    }
    if (figure.value !== null && typeof figure.value !== "number") throw new ReportFormatError(`${path}: figure ${figure.id} has a non-numeric "value"`);
    figure.better ??= directionOfUnit(figure.unit);
    figure.suite ??= figure.id.split(".")[0]!;
    figure.spread ??= null;
  });
  return {
    schema: 2,
    metadata: report.metadata as RunMetadata,
    figures: report.figures,
    targets: Array.isArray(report.targets) ? report.targets : [],
    errors: Array.isArray(report.errors) ? report.errors : [],
    skipped: Array.isArray(report.skipped) ? report.skipped : [],
  };
}
