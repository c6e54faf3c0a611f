// Peak-memory probe, run in a child process by bench/suites/memory.ts so no
// other suite's buffers count. It fills a registered region of PAGES pages
// with UFFDIO_COPY, 64 pages per call, and prints the process's peak resident
// set (VmHWM) beside the memory the simulated kernel holds, as JSON.
//
// Usage: node dist/bench/memory-probe.js PAGES

import { readFileSync } from "node:fs";
import { MADV_DONTNEED } from "../src/index.js";
import { PAGE_SIZE } from "./config.js";
import { createRegisteredRegion, mapHotSource } from "./suites/setup.js";

const PAGES_PER_CALL = 64;
/** Room above the region for page tables, the source and the zero frame. */
const TABLE_MARGIN_BYTES = 16 << 20;

/** Reads a "Vm...: N kB" line of /proc/self/status, in bytes; null where there is no procfs. */
function statusBytes(field: string): number | null {
  try {
    const line = readFileSync("/proc/self/status", "utf8").split("\n").find((text) => text.startsWith(`${field}:`));
    const kib = line === undefined ? NaN : Number.parseInt(line.slice(field.length + 1), 10);
    return Number.isFinite(kib) ? kib * 1024 : null;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const pages = Number.parseInt(process.argv[2] ?? "", 10);
  if (!Number.isSafeInteger(pages) || pages <= 0 || pages % PAGES_PER_CALL !== 0) {
    process.stderr.write(`memory-probe: invalid PAGES "${process.argv[2] ?? ""}": expected a positive multiple of ${PAGES_PER_CALL}\n`);
    process.exitCode = 2;
    return;
  }
  const baselineRssBytes = statusBytes("VmRSS");
  const setup = await createRegisteredRegion(pages * PAGE_SIZE + TABLE_MARGIN_BYTES, pages, 0);
  const source = await mapHotSource(setup.process);
  const args = { dst: 0, src: source, len: PAGES_PER_CALL * PAGE_SIZE, mode: 0 };
  // Two passes, as a streaming figure runs several: the second refills the frames the first freed.
  for (let pass = 0; pass < 2; pass++) {
    for (let page = 0; page < pages; page += PAGES_PER_CALL) {
      args.dst = setup.region + page * PAGE_SIZE;
      const result = setup.uffd.copy(args);
      if (result.errno !== 0) throw new Error(`UFFDIO_COPY failed with errno ${result.errno}`);
    }
    if (pass === 0) await setup.process.madvise(setup.region, pages * PAGE_SIZE, MADV_DONTNEED);
  }
  const output = {
    regionPages: pages,
    simulatedBytes: setup.kernel.framesUsed * PAGE_SIZE,
    wasmMemoryBytes: setup.kernel.core.exports.memory.buffer.byteLength,
    baselineRssBytes,
    peakRssBytes: statusBytes("VmHWM"),
  };
  process.stdout.write(JSON.stringify(output) + "\n");
}

await main();
