// The JSON report: every figure, the targets and the run metadata.

import { writeFileSync } from "node:fs";
import type { RunMetadata } from "../metadata.js";
import type { Figure } from "../stats.js";
import type { TargetResult } from "../targets.js";

/** A suite that threw: its figures are missing from the report. */
export interface SuiteError {
  suite: string;
  message: string;
}

export interface BenchReport {
  /** Format version of this JSON document. */
  schema: 1;
  metadata: RunMetadata;
  figures: Figure[];
  targets: TargetResult[];
  errors: SuiteError[];
}

/** Writes `report` to `path` as indented JSON; throws the file system's error on failure. */
export function writeJsonReport(path: string, report: BenchReport): void {
  writeFileSync(path, JSON.stringify(report, null, 2) + "\n");
}
