// The benchmark runner behind `uffd-wasm bench`: runs the native anchor and
// every suite, sets ratios and targets, prints the table and writes the
// JSON report. A suite that throws is reported and the others still run.

import { Kernel } from "../src/index.js";
import { benchConfig, type SuiteContext } from "./config.js";
import { collectMetadata } from "./metadata.js";
import { buildNativeAnchor, nativeFigures, runNativeAnchor, type NativeRun } from "./native.js";
import { writeJsonReport, type BenchReport, type SuiteError } from "./report/json.js";
import { renderTable } from "./report/table.js";
import type { Figure } from "./stats.js";
import { runContention } from "./suites/contention.js";
import { runCopyKernels } from "./suites/copy-kernels.js";
import { runFork } from "./suites/fork.js";
import { StreamingReference } from "./suites/reference.js";
import { runUffdioCopy } from "./suites/uffdio-copy.js";
import { applyRatios, evaluateTargets } from "./targets.js";

export interface BenchOptions {
  /** Smaller regions and shorter time budgets; the same figures. */
  quick: boolean;
  /** Path of the JSON report, or null for none. */
  jsonPath: string | null;
}

interface Suite {
  name: string;
  run: (context: SuiteContext) => Promise<Figure[]>;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/**
 * Runs the whole benchmark, prints the table on stdout and writes the JSON
 * report when asked. Returns the process exit code: 0, also when targets
 * are missed; 1 when a suite failed or the JSON file could not be written.
 */
export async function runBench(options: BenchOptions): Promise<number> {
  const start = new Date();
  const startMs = performance.now();
  const config = benchConfig(options.quick);
  const progress = process.stderr.isTTY ? (message: string) => process.stderr.write(`[bench] ${message}\n`) : () => {};
  progress("reference: touching the streaming reference buffers");
  const reference = await StreamingReference.create(config);
  const context: SuiteContext = { config, progress, reference };

  // A small kernel of its own supplies the wasm hash and the default copy kernel.
  const probe = await Kernel.create({ maxMemory: 1 << 20 });
  const wasmSha256 = probe.wasmSha256;
  const defaultCopyKernel = probe.core.exports.get_copy_kernel();

  progress("native anchor: building bench/native/memcpy.c");
  const native = buildNativeAnchor();
  // The anchor runs in short separate processes before, between the halves
  // of, and after the copy kernels. On a shared VM the speed of memory can
  // drift by tens of percent within seconds, and the ratios should compare
  // samples taken together.
  const nativeRuns: NativeRun[] = [];
  const timeNativeAnchor = () => {
    progress("native anchor: running");
    nativeRuns.push(runNativeAnchor(native, config));
  };
  const suites: Suite[] = [
    {
      name: "copy kernels",
      run: async (suiteContext) => {
        timeNativeAnchor();
        const { figures } = await runCopyKernels(suiteContext, () => {
          timeNativeAnchor();
          timeNativeAnchor();
        });
        timeNativeAnchor();
        return figures;
      },
    },
    { name: "UFFDIO_COPY", run: runUffdioCopy },
    { name: "copy_page_range", run: runFork },
    { name: "contention", run: runContention },
  ];

  const figures: Figure[] = [];
  const errors: SuiteError[] = [];
  for (const suite of suites) {
    progress(`suite: ${suite.name}`);
    try {
      figures.push(...(await suite.run(context)));
    } catch (error) {
      errors.push({ suite: suite.name, message: errorMessage(error) });
    }
  }
  figures.unshift(...nativeFigures(native, nativeRuns));

  applyRatios(figures);
  const targets = evaluateTargets(figures, defaultCopyKernel);
  const metadata = collectMetadata({
    wasmSha256,
    defaultCopyKernel,
    native: native.info,
    config,
    start,
    durationSeconds: (performance.now() - startMs) / 1000,
  });
  const report: BenchReport = { schema: 1, metadata, figures, targets, errors };
  process.stdout.write(renderTable(report));

  let exitCode = errors.length > 0 ? 1 : 0;
  if (options.jsonPath !== null) {
    try {
      writeJsonReport(options.jsonPath, report);
      progress(`wrote ${options.jsonPath}`);
    } catch (error) {
      process.stderr.write(`uffd-wasm bench: cannot write the JSON report to ${options.jsonPath}: ${errorMessage(error)}\n`);
      exitCode = 1;
    }
  }
  return exitCode;
}
