// The native anchors: C programs under bench/native/, built at run time with
// the machine's C compiler into build/native/, run in separate processes,
// and turned into figures. Any failure becomes a one-line reason on the
// figures and the run goes on.
//
// memcpy.c times libc memcpy of 4 KiB pages (the copy-kernel anchor);
// bench/native-kernel.ts runs uffd.c, the real kernel's userfaultfd.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PAGE_SIZE, type BenchConfig } from "./config.js";
import { missingFigure, summarizeSamples, throughputFigure, type Figure } from "./stats.js";

/** Package root: this file runs from dist/bench/. */
export const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

const SOURCE_DIR = join(PACKAGE_ROOT, "bench", "native");
const OUTPUT_DIR = join(PACKAGE_ROOT, "build", "native");
const COMPILE_TIMEOUT_MS = 60_000;
const RUN_TIMEOUT_MS = 300_000;

export const NATIVE_GROUP = "native anchor (libc memcpy, 4 KiB pages)";
export const NATIVE_WARM_ID = "native.memcpy.warm";
export const NATIVE_STREAMING_ID = "native.memcpy.streaming";

export interface NativeInfo {
  /** Compiler command and the first line of its --version output, when one was found. */
  compiler: string | null;
  compilerVersion: string | null;
  /** Reason the memcpy anchor has no figures, or null when it ran. */
  failure: string | null;
  /** Reason the kernel anchor (uffd.c) has no figures, or null when it ran or was not needed. */
  kernelFailure?: string | null;
}

interface MemcpyOutput {
  warmDstPages: number;
  warmPagesPerSample: number;
  regionPages: number;
  warmNsPerPage: number[];
  streamingNsPerPage: number[];
}

export function firstLine(text: string): string {
  return text.split("\n").map((line) => line.trim()).find((line) => line.length > 0) ?? "";
}

/** Finds a working C compiler: $CC if set, else cc, gcc or clang. */
function findCompiler(): { command: string; version: string } | null {
  const candidates = process.env.CC ? [process.env.CC] : ["cc", "gcc", "clang"];
  for (const command of candidates) {
    const probe = spawnSync(command, ["--version"], { encoding: "utf8", timeout: COMPILE_TIMEOUT_MS });
    if (probe.error === undefined && probe.status === 0) return { command, version: firstLine(probe.stdout) };
  }
  return null;
}

/** A built native program, or the reason there is none. */
export interface NativeProgram {
  /** Path of the built program; null when building failed. */
  binary: string | null;
  /** Reason the program was not built, or null. */
  failure: string | null;
}

/** Compiles bench/native/`name`.c into build/native/`name`; returns the reason on failure. */
function compile(command: string, name: string, flags: readonly string[]): NativeProgram {
  const source = join(SOURCE_DIR, `${name}.c`);
  const binary = join(OUTPUT_DIR, name);
  if (!existsSync(source)) return { binary: null, failure: `source ${source} not found` };
  try {
    mkdirSync(OUTPUT_DIR, { recursive: true });
    // A stale binary must not run when this build fails.
    rmSync(binary, { force: true });
  } catch (error) {
    return { binary: null, failure: `cannot create ${OUTPUT_DIR}: ${(error as Error).message}` };
  }
  const result = spawnSync(command, ["-O2", ...flags, "-o", binary, source], { encoding: "utf8", timeout: COMPILE_TIMEOUT_MS });
  if (result.error !== undefined) return { binary: null, failure: `${command} failed to start: ${result.error.message}` };
  if (result.status !== 0) return { binary: null, failure: `${command} exited with status ${result.status} on ${name}.c: ${firstLine(result.stderr)}` };
  if (!existsSync(binary)) return { binary: null, failure: `${command} exited with status 0 but wrote no ${binary}` };
  return { binary, failure: null };
}

/** The built anchors: memcpy always, the kernel anchor when a suite needs it. */
export interface NativeAnchors {
  info: NativeInfo;
  memcpy: NativeProgram;
  kernel: NativeProgram;
}

/** Finds a C compiler and builds the anchors the selected suites need into build/native/. */
export function buildNativeAnchors(needed: { memcpy: boolean; kernel: boolean }): NativeAnchors {
  const notNeeded: NativeProgram = { binary: null, failure: "not needed by the selected suites" };
  if (!needed.memcpy && !needed.kernel) {
    return { info: { compiler: null, compilerVersion: null, failure: notNeeded.failure, kernelFailure: null }, memcpy: notNeeded, kernel: notNeeded };
  }
  const compiler = findCompiler();
  if (compiler === null) {
    const tried = process.env.CC ? `$CC (${process.env.CC})` : "cc, gcc or clang";
    const failure = `no C compiler found (tried ${tried})`;
    return {
      info: { compiler: null, compilerVersion: null, failure, kernelFailure: needed.kernel ? failure : null },
      memcpy: needed.memcpy ? { binary: null, failure } : notNeeded,
      kernel: needed.kernel ? { binary: null, failure } : notNeeded,
    };
  }
  const memcpy = needed.memcpy ? compile(compiler.command, "memcpy", ["-std=c11"]) : notNeeded;
  const kernel = needed.kernel ? compile(compiler.command, "uffd", ["-std=gnu11", "-pthread"]) : notNeeded;
  return {
    info: {
      compiler: compiler.command,
      compilerVersion: compiler.version,
      failure: memcpy.failure,
      kernelFailure: needed.kernel ? kernel.failure : null,
    },
    memcpy,
    kernel,
  };
}

/** Runs a built program and parses its JSON output; returns the reason on failure. */
export function runNativeProgram<T>(binary: string, args: readonly string[]): T | string {
  const result = spawnSync(binary, args, { encoding: "utf8", timeout: RUN_TIMEOUT_MS, maxBuffer: 16 << 20 });
  if (result.error !== undefined) return `${binary} failed to run: ${result.error.message}`;
  if (result.status !== 0) return `${binary} exited with status ${result.status}: ${firstLine(result.stderr)}`;
  try {
    return JSON.parse(result.stdout) as T;
  } catch (error) {
    return `${binary} printed invalid JSON: ${(error as Error).message}`;
  }
}

/** Turns per-page times into per-sample times in milliseconds. */
export function sampleMs(nsPerItem: readonly number[], itemsPerSample: number): number[] {
  return nsPerItem.map((ns) => (ns * itemsPerSample) / 1e6);
}

/** One run of the memcpy anchor: its samples, or the reason it failed. */
export type MemcpyRun = MemcpyOutput | string;

/** Runs the memcpy anchor once; a failure is recorded in `anchors.info` too. */
export function runMemcpyAnchor(anchors: NativeAnchors, config: BenchConfig): MemcpyRun {
  if (anchors.memcpy.binary === null) return anchors.memcpy.failure ?? "not built";
  const regionMiB = (config.streamingPages * PAGE_SIZE) / (1 << 20);
  const args = [regionMiB, config.warmPagesPerSample, config.nativeWarmSamples, config.nativeStreamingSamples].map(String);
  const output = runNativeProgram<MemcpyOutput>(anchors.memcpy.binary, args);
  if (typeof output === "string" && anchors.info.failure === null) anchors.info.failure = output;
  return output;
}

/**
 * Returns the two figures of the memcpy anchor, warm and streaming, in
 * GB/s, from the merged samples of all its runs. On any failure both carry
 * the reason.
 */
export function memcpyFigures(anchors: NativeAnchors, runs: readonly MemcpyRun[]): Figure[] {
  const common = { group: NATIVE_GROUP, suite: "native", unit: "GB/s", better: "higher" as const };
  const warmBase = { ...common, id: NATIVE_WARM_ID, name: "memcpy warm" };
  const streamingBase = { ...common, id: NATIVE_STREAMING_ID, name: "memcpy streaming" };
  const failure = anchors.info.failure ?? runs.find((output): output is string => typeof output === "string") ?? (runs.length === 0 ? "not run" : null);
  const outputs = runs.filter((output): output is MemcpyOutput => typeof output !== "string");
  const first = outputs[0];
  if (failure !== null || first === undefined) {
    const reason = failure ?? "not run";
    return [missingFigure(warmBase, reason), missingFigure(streamingBase, reason)];
  }
  const warmMs = outputs.flatMap((output) => sampleMs(output.warmNsPerPage, output.warmPagesPerSample));
  const streamingMs = outputs.flatMap((output) => sampleMs(output.streamingNsPerPage, output.regionPages));
  const note = outputs.length > 1 ? `samples of ${outputs.length} processes, run before, amid and after the suites that compare with them` : undefined;
  const warm = throughputFigure(
    { ...warmBase, counts: { pagesPerSample: first.warmPagesPerSample, dstPages: first.warmDstPages, srcPages: 1 }, ...(note ? { note } : {}) },
    summarizeSamples(warmMs),
    first.warmPagesPerSample * PAGE_SIZE,
  );
  const streaming = throughputFigure(
    { ...streamingBase, counts: { pagesPerSample: first.regionPages, dstPages: first.regionPages, srcPages: 1 }, ...(note ? { note } : {}) },
    summarizeSamples(streamingMs),
    first.regionPages * PAGE_SIZE,
  );
  return [warm, streaming];
}
