// The benchmark runner behind `uffd-wasm bench`: builds and runs the native
// anchors, runs the selected suites, sets ratios and targets, prints the
// table and writes the reports. A suite that throws is reported and the
// others still run; a suite that cannot run here is skipped with a reason.

import { writeFileSync } from "node:fs";
import { Kernel } from "../src/index.js";
import { compareReports, renderComparison } from "./compare.js";
import { DEFAULT_MAX_REGRESSION_PERCENT, SUITE_NAMES, benchConfig, type BenchConfig, type SuiteContext, type SuiteName } from "./config.js";
import { collectMetadata } from "./metadata.js";
import { runKernelAnchor } from "./native-kernel.js";
import { buildNativeAnchors, memcpyFigures, runMemcpyAnchor, type MemcpyRun, type NativeAnchors } from "./native.js";
import { createProgress, type Progress } from "./progress.js";
import { renderCiFormat, type OutputFormat } from "./report/ci-formats.js";
import { renderHtml } from "./report/html.js";
import { readJsonReport, writeJsonReport, type BenchReport, type SuiteError, type SuiteSkip } from "./report/json.js";
import { renderTable } from "./report/table.js";
import type { Figure } from "./stats.js";
import { runContention } from "./suites/contention.js";
import { runCopyKernels } from "./suites/copy-kernels.js";
import { SuiteSkipped, runExplore } from "./suites/explore.js";
import { runFault } from "./suites/fault.js";
import { runFork } from "./suites/fork.js";
import { runMemory } from "./suites/memory.js";
import { StreamingReference } from "./suites/reference.js";
import { runUffdio } from "./suites/uffdio.js";
import { runWalk } from "./suites/walk.js";
import { applyRatios, evaluateTargets } from "./targets.js";

export interface BenchOptions {
  /** Smaller regions and shorter time budgets; the same figures. */
  quick: boolean;
  /** Path of the JSON report, or null for none. */
  jsonPath: string | null;
  /** The suites to run; all when absent. */
  suites?: readonly SuiteName[];
  /** Write the figures in a CI tracker's format to `outputPath`, or to stdout when it is null. */
  format?: OutputFormat | null;
  outputPath?: string | null;
  /** Path of the self-contained HTML report, or null for none. */
  htmlPath?: string | null;
  /** A saved JSON report to check this run against, and the allowed regression in percent. */
  baselinePath?: string | null;
  maxRegressionPercent?: number;
  /** No progress lines on stderr. */
  quiet?: boolean;
  /** Replaces parts of the configuration (tests use tiny time budgets). */
  configOverride?: Partial<BenchConfig>;
}

type SuiteRun = (context: SuiteContext) => Promise<Figure[]>;

const SUITES: Record<SuiteName, SuiteRun> = {
  "copy-kernels": async (context) => (await runCopyKernels(context)).figures,
  uffdio: runUffdio,
  contention: runContention,
  fork: runFork,
  walk: runWalk,
  fault: runFault,
  explore: runExplore,
  memory: runMemory,
};

function errorMessage(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Wraps the first suite that compares with the memcpy anchor so the anchor runs, in separate processes, around it. */
function withMemcpyAnchor(name: SuiteName, anchors: NativeAnchors, runs: MemcpyRun[], config: BenchConfig, progress: Progress): SuiteRun {
  const time = () => {
    progress.task("native memcpy anchor");
    runs.push(runMemcpyAnchor(anchors, config));
  };
  if (name === "copy-kernels") {
    // Before, between the rounds of, and after the interleaved copy kernels:
    // on a shared VM the speed of memory drifts by tens of percent within
    // seconds, and the ratios should compare samples taken together.
    return async (context) => {
      time();
      const { figures } = await runCopyKernels(context, time);
      time();
      return figures;
    };
  }
  return async (context) => {
    time();
    const figures = await SUITES[name](context);
    time();
    return figures;
  };
}

interface RunResult {
  report: BenchReport;
  /** A suite threw. */
  failed: boolean;
}

async function runSuites(options: BenchOptions, progress: Progress): Promise<RunResult> {
  const start = new Date();
  const startMs = performance.now();
  const config: BenchConfig = { ...benchConfig(options.quick), ...options.configOverride };
  const selected = SUITE_NAMES.filter((name) => options.suites === undefined || options.suites.includes(name));

  // A small kernel of its own supplies the wasm hash and the default copy kernel.
  const probe = await Kernel.create({ maxMemory: 1 << 20 });
  const wasmSha256 = probe.wasmSha256;
  const defaultCopyKernel = probe.core.exports.get_copy_kernel();

  const needsMemcpy = selected.includes("copy-kernels") || selected.includes("uffdio");
  const needsKernel = selected.includes("uffdio") || selected.includes("fork") || selected.includes("fault");
  if (needsMemcpy || needsKernel) {
    progress.suite("native");
    progress.task("building the anchors in bench/native/ with the C compiler");
  }
  const anchors = buildNativeAnchors({ memcpy: needsMemcpy, kernel: needsKernel });
  const figures: Figure[] = [];
  if (needsKernel) {
    progress.task("kernel anchor (bench/native/uffd.c): UFFDIO_COPY, UFFDIO_ZEROPAGE, fork, fault round trip");
    figures.push(...runKernelAnchor(anchors, config, {
      pagesPerCall: selected.includes("uffdio") ? config.uffdioPagesPerCall : [],
      forkPresentPages: selected.includes("fork") ? config.forkPresentPages : [],
    }));
    if (anchors.info.kernelFailure) process.stderr.write(`uffd-wasm bench: kernel anchor not measured: ${anchors.info.kernelFailure}\n`);
  }

  let referencePromise: Promise<StreamingReference> | null = null;
  const context: SuiteContext = {
    config,
    progress,
    reference: () => {
      progress.task("touching the streaming reference buffers");
      referencePromise ??= StreamingReference.create(config);
      return referencePromise;
    },
  };
  const memcpyRuns: MemcpyRun[] = [];
  const errors: SuiteError[] = [];
  const skipped: SuiteSkip[] = [];
  // The memcpy anchor runs around the first of the suites that compare with it.
  const memcpySuite = selected.find((name) => name === "copy-kernels" || name === "uffdio");
  for (const name of selected) {
    progress.suite(name);
    const run = name === memcpySuite ? withMemcpyAnchor(name, anchors, memcpyRuns, config, progress) : SUITES[name];
    try {
      figures.push(...(await run(context)));
    } catch (error) {
      if (error instanceof SuiteSkipped) {
        skipped.push({ suite: name, reason: error.message });
        process.stderr.write(`uffd-wasm bench: suite ${name} skipped: ${error.message}\n`);
      } else {
        errors.push({ suite: name, message: errorMessage(error) });
      }
    }
  }
  if (needsMemcpy) figures.unshift(...memcpyFigures(anchors, memcpyRuns));

  applyRatios(figures);
  const targets = evaluateTargets(figures, defaultCopyKernel, config.forkPresentPages);
  const metadata = collectMetadata({
    wasmSha256,
    defaultCopyKernel,
    native: anchors.info,
    config,
    suites: selected,
    start,
    durationSeconds: (performance.now() - startMs) / 1000,
  });
  return { report: { schema: 2, metadata, figures, targets, errors, skipped }, failed: errors.length > 0 };
}

/** Writes `text` to `path`; prints the reason and returns false on failure. */
function writeOutput(path: string, text: string, description: string): boolean {
  try {
    writeFileSync(path, text);
    return true;
  } catch (error) {
    process.stderr.write(`uffd-wasm bench: cannot write the ${description} to ${path}: ${errorMessage(error)}\n`);
    return false;
  }
}

/**
 * Runs the selected suites, prints the table, writes the reports asked for
 * and checks the run against a baseline when one is given. Returns the
 * process exit code: 0, also when targets are missed; 1 when a suite
 * failed, a report could not be written, or the regression check failed.
 * With --format and no --output the format document goes to stdout and the
 * table to stderr.
 */
export async function runBench(options: BenchOptions): Promise<number> {
  const progress = createProgress(options.quiet === true);
  // Read the baseline first: a bad file should fail before a long run.
  const baseline = options.baselinePath ? readJsonReport(options.baselinePath) : null;
  const { report, failed } = await runSuites(options, progress);
  const formatToStdout = options.format != null && options.outputPath == null;
  const humanOutput = (text: string) => (formatToStdout ? process.stderr.write(text) : process.stdout.write(text));
  humanOutput(renderTable(report));

  let exitCode = failed ? 1 : 0;
  if (options.jsonPath != null) {
    try {
      writeJsonReport(options.jsonPath, report);
    } catch (error) {
      process.stderr.write(`uffd-wasm bench: cannot write the JSON report to ${options.jsonPath}: ${errorMessage(error)}\n`);
      exitCode = 1;
    }
  }
  if (options.format != null) {
    const text = renderCiFormat(report, options.format);
    if (options.outputPath != null) {
      if (!writeOutput(options.outputPath, text, `${options.format} output`)) exitCode = 1;
    } else {
      process.stdout.write(text);
    }
  }
  if (options.htmlPath != null && !writeOutput(options.htmlPath, renderHtml(report), "HTML report")) exitCode = 1;
  if (baseline !== null) {
    // Figures of suites this run did not select are not compared.
    const ran = new Set(["native", ...report.metadata.suites]);
    const relevant = { ...baseline, figures: baseline.figures.filter((figure) => ran.has(figure.suite)) };
    const comparison = compareReports(relevant, report, options.maxRegressionPercent ?? DEFAULT_MAX_REGRESSION_PERCENT);
    humanOutput("\n" + renderComparison(comparison, { baseline: options.baselinePath!, current: "this run" }));
    if (!comparison.passed) exitCode = 1;
  }
  return exitCode;
}
