// The native anchor: builds bench/native/memcpy.c with the machine's C
// compiler into build/native/, runs it, and turns its samples into figures.
// Any failure becomes a one-line reason on the figures; the run goes on.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PAGE_SIZE, type BenchConfig } from "./config.js";
import { missingFigure, summarizeSamples, throughputFigure, type Figure } from "./stats.js";

/** Package root: this file runs from dist/bench/. */
export const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

const SOURCE = join(PACKAGE_ROOT, "bench", "native", "memcpy.c");
const OUTPUT_DIR = join(PACKAGE_ROOT, "build", "native");
const BINARY = join(OUTPUT_DIR, "memcpy");
const COMPILE_TIMEOUT_MS = 60_000;
const RUN_TIMEOUT_MS = 300_000;

export const NATIVE_GROUP = "native anchor (libc memcpy, 4 KiB pages)";
export const NATIVE_WARM_ID = "native.memcpy.warm";
export const NATIVE_STREAMING_ID = "native.memcpy.streaming";

export interface NativeInfo {
  /** Compiler command and the first line of its --version output, when one was found. */
  compiler: string | null;
  compilerVersion: string | null;
  /** Reason the anchor has no figures, or null when it ran. */
  failure: string | null;
}

interface NativeOutput {
  warmDstPages: number;
  warmPagesPerSample: number;
  regionPages: number;
  warmNsPerPage: number[];
  streamingNsPerPage: number[];
}

function firstLine(text: string): string {
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

function compile(command: string): string | null {
  if (!existsSync(SOURCE)) return `source ${SOURCE} not found`;
  try {
    mkdirSync(OUTPUT_DIR, { recursive: true });
    // A stale binary must not run when this build fails.
    rmSync(BINARY, { force: true });
  } catch (error) {
    return `cannot create ${OUTPUT_DIR}: ${(error as Error).message}`;
  }
  const result = spawnSync(command, ["-O2", "-std=c11", "-o", BINARY, SOURCE], { encoding: "utf8", timeout: COMPILE_TIMEOUT_MS });
  if (result.error !== undefined) return `${command} failed to start: ${result.error.message}`;
  if (result.status !== 0) return `${command} exited with status ${result.status}: ${firstLine(result.stderr)}`;
  if (!existsSync(BINARY)) return `${command} exited with status 0 but wrote no ${BINARY}`;
  return null;
}

function run(config: BenchConfig): NativeOutput | string {
  const regionMiB = (config.streamingPages * PAGE_SIZE) / (1 << 20);
  const args = [regionMiB, config.warmPagesPerSample, config.nativeWarmSamples, config.nativeStreamingSamples].map(String);
  const result = spawnSync(BINARY, args, { encoding: "utf8", timeout: RUN_TIMEOUT_MS, maxBuffer: 16 << 20 });
  if (result.error !== undefined) return `${BINARY} failed to run: ${result.error.message}`;
  if (result.status !== 0) return `${BINARY} exited with status ${result.status}: ${firstLine(result.stderr)}`;
  try {
    return JSON.parse(result.stdout) as NativeOutput;
  } catch (error) {
    return `${BINARY} printed invalid JSON: ${(error as Error).message}`;
  }
}

/** Turns per-page times into per-sample times in milliseconds. */
function sampleMs(nsPerPage: readonly number[], pagesPerSample: number): number[] {
  return nsPerPage.map((ns) => (ns * pagesPerSample) / 1e6);
}

/** A built anchor, or the reason there is none. */
export interface NativeAnchor {
  info: NativeInfo;
  /** Path of the built program; null when building failed. */
  binary: string | null;
}

/** Finds a C compiler and builds the anchor into build/native/. */
export function buildNativeAnchor(): NativeAnchor {
  const compiler = findCompiler();
  if (compiler === null) {
    const tried = process.env.CC ? `$CC (${process.env.CC})` : "cc, gcc or clang";
    return { info: { compiler: null, compilerVersion: null, failure: `no C compiler found (tried ${tried})` }, binary: null };
  }
  const info: NativeInfo = { compiler: compiler.command, compilerVersion: compiler.version, failure: null };
  const compileError = compile(compiler.command);
  if (compileError !== null) return { info: { ...info, failure: compileError }, binary: null };
  return { info, binary: BINARY };
}

/** One run of the built anchor: its samples, or the reason it failed. */
export type NativeRun = NativeOutput | string;

/** Runs the anchor once; a failure is recorded in `anchor.info` too. */
export function runNativeAnchor(anchor: NativeAnchor, config: BenchConfig): NativeRun {
  if (anchor.binary === null) return anchor.info.failure ?? "not built";
  const output = run(config);
  if (typeof output === "string" && anchor.info.failure === null) anchor.info.failure = output;
  return output;
}

/**
 * Returns the two figures of the anchor, warm and streaming, in GB/s, from
 * the merged samples of all its runs. On any failure both carry the reason.
 */
export function nativeFigures(anchor: NativeAnchor, runs: readonly NativeRun[]): Figure[] {
  const warmBase = { id: NATIVE_WARM_ID, name: "memcpy warm", group: NATIVE_GROUP };
  const streamingBase = { id: NATIVE_STREAMING_ID, name: "memcpy streaming", group: NATIVE_GROUP };
  const failure = anchor.info.failure ?? runs.find((output): output is string => typeof output === "string") ?? (runs.length === 0 ? "not run" : null);
  const outputs = runs.filter((output): output is NativeOutput => typeof output !== "string");
  const first = outputs[0];
  if (failure !== null || first === undefined) {
    const reason = failure ?? "not run";
    return [missingFigure({ ...warmBase, unit: "GB/s" }, reason), missingFigure({ ...streamingBase, unit: "GB/s" }, reason)];
  }
  const warmMs = outputs.flatMap((output) => sampleMs(output.warmNsPerPage, output.warmPagesPerSample));
  const streamingMs = outputs.flatMap((output) => sampleMs(output.streamingNsPerPage, output.regionPages));
  const note = outputs.length > 1 ? `samples of ${outputs.length} processes, run before, amid and after the copy kernels` : undefined;
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
