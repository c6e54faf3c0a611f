// Run metadata for the JSON report: package, Node, machine, wasm binary.

import { readFileSync } from "node:fs";
import { arch, cpus, platform, release, totalmem } from "node:os";
import { join } from "node:path";
import type { BenchConfig } from "./config.js";
import { PACKAGE_ROOT, type NativeInfo } from "./native.js";

export interface RunMetadata {
  package: { name: string; version: string };
  node: string;
  v8: string;
  machine: { os: string; release: string; arch: string; cpuModel: string; cores: number; memoryBytes: number };
  wasmSha256: string;
  /** The copy kernel id the core used by default (0 memory.copy, 1 SIMD). */
  defaultCopyKernel: number;
  native: NativeInfo;
  mode: "quick" | "full";
  /** The suites this run selected, in run order. */
  suites: string[];
  config: BenchConfig;
  /** Start of the run, ISO 8601. */
  date: string;
  durationSeconds: number;
}

function readPackage(): { name: string; version: string } {
  try {
    const manifest = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { name?: string; version?: string };
    return { name: manifest.name ?? "unknown", version: manifest.version ?? "unknown" };
  } catch {
    return { name: "unknown", version: "unknown" };
  }
}

export function collectMetadata(fields: {
  wasmSha256: string;
  defaultCopyKernel: number;
  native: NativeInfo;
  config: BenchConfig;
  suites: readonly string[];
  start: Date;
  durationSeconds: number;
}): RunMetadata {
  const cpuList = cpus();
  return {
    package: readPackage(),
    node: process.version,
    v8: process.versions.v8,
    machine: {
      os: platform(),
      release: release(),
      arch: arch(),
      cpuModel: cpuList[0]?.model.trim() ?? "unknown",
      cores: cpuList.length,
      memoryBytes: totalmem(),
    },
    wasmSha256: fields.wasmSha256,
    defaultCopyKernel: fields.defaultCopyKernel,
    native: fields.native,
    mode: fields.config.quick ? "quick" : "full",
    suites: [...fields.suites],
    config: fields.config,
    date: fields.start.toISOString(),
    durationSeconds: fields.durationSeconds,
  };
}
