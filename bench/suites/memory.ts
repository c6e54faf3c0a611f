// Peak memory: the resident set of a process that streams UFFDIO_COPY over
// a 256 MiB region, against the memory the simulated kernel holds (its
// frames in use: pages, page tables and the zero frame). The probe runs in a
// child process (bench/memory-probe.ts), so the other suites' buffers do not
// count; its peak includes Node's own heap and code. A bare Node process
// (about 40 MiB here) is measured beside it, to show the floor that Node
// itself puts under the whole-process ratio.

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { formatBytes, PAGE_SIZE, type SuiteContext } from "../config.js";
import { firstLine } from "../native.js";
import { missingFigure, type Figure } from "../stats.js";

export const MEMORY_SUITE = "memory";
export const MEMORY_GROUP = "peak memory (child process, streaming UFFDIO_COPY)";
export const MEMORY_RATIO_ID = "memory.peak_rss_ratio";
export const MEMORY_PEAK_ID = "memory.peak_rss";
export const MEMORY_GROWTH_ID = "memory.rss_growth_ratio";
const PROBE = fileURLToPath(new URL("../memory-probe.js", import.meta.url));
const MIB = 1 << 20;

interface ProbeOutput {
  regionPages: number;
  simulatedBytes: number;
  wasmMemoryBytes: number;
  baselineRssBytes: number | null;
  peakRssBytes: number | null;
}

/** Peak RSS of a bare Node process (same binary, no module loaded), in bytes; null where it cannot be read. */
function bareNodePeakBytes(): number | null {
  const script = "const s=require('fs').readFileSync('/proc/self/status','utf8').split('\\n').find(l=>l.startsWith('VmHWM:'));process.stdout.write(String(s?parseInt(s.slice(6),10)*1024:''))";
  const result = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 30_000 });
  const bytes = result.status === 0 ? Number.parseInt(result.stdout, 10) : NaN;
  return Number.isFinite(bytes) ? bytes : null;
}

export async function runMemory(context: SuiteContext): Promise<Figure[]> {
  const { config, progress } = context;
  const pages = config.memoryProbePages;
  progress.task(`child process streaming over ${formatBytes(pages * PAGE_SIZE)}`);
  const common = { group: MEMORY_GROUP, suite: MEMORY_SUITE, better: "lower" as const };
  const ratioBase = { ...common, id: MEMORY_RATIO_ID, name: "peak RSS / simulated memory", unit: "×" };
  const peakBase = { ...common, id: MEMORY_PEAK_ID, name: `peak RSS, ${formatBytes(pages * PAGE_SIZE)} streaming run`, unit: "MiB" };
  const growthBase = { ...common, id: MEMORY_GROWTH_ID, name: "(peak RSS - RSS before the kernel) / simulated memory", unit: "×" };
  const result = spawnSync(process.execPath, [PROBE, String(pages)], { encoding: "utf8", timeout: 300_000 });
  let failure: string | null = null;
  let output: ProbeOutput | null = null;
  if (result.error !== undefined) failure = `the memory probe failed to start: ${result.error.message}`;
  else if (result.status !== 0) failure = `the memory probe exited with status ${result.status}: ${firstLine(result.stderr)}`;
  else {
    try {
      output = JSON.parse(result.stdout) as ProbeOutput;
    } catch (error) {
      failure = `the memory probe printed invalid JSON: ${(error as Error).message}`;
    }
  }
  if (output !== null && output.peakRssBytes === null) failure = "no /proc/self/status here: peak RSS is not known";
  if (failure !== null || output === null || output.peakRssBytes === null) {
    const reason = failure ?? "no output";
    return [missingFigure(ratioBase, reason), missingFigure(growthBase, reason), missingFigure(peakBase, reason)];
  }
  const baseline = output.baselineRssBytes === null ? "unknown" : `${(output.baselineRssBytes / MIB).toFixed(0)} MiB`;
  const counts = { regionPages: output.regionPages, simulatedBytes: output.simulatedBytes };
  // Node's own floor: a run that held nothing but the simulated memory would
  // still have this ratio, so the growth figure is the model's own share.
  const bare = bareNodePeakBytes();
  const floor = bare === null ? "" : `; a bare Node process peaks at ${(bare / MIB).toFixed(0)} MiB, so the ratio cannot go below ${((bare + output.simulatedBytes) / output.simulatedBytes).toFixed(3)} in this runtime`;
  const note = `simulated ${(output.simulatedBytes / MIB).toFixed(1)} MiB, wasm memory ${(output.wasmMemoryBytes / MIB).toFixed(0)} MiB, RSS before the kernel was created ${baseline}${floor}`;
  const figures: Figure[] = [
    { ...ratioBase, value: output.peakRssBytes / output.simulatedBytes, spread: null, samples: 1, counts, note },
    { ...peakBase, value: output.peakRssBytes / MIB, spread: null, samples: 1, counts },
  ];
  // What the model adds on top of the Node process it runs in.
  if (output.baselineRssBytes !== null) {
    const growth = (output.peakRssBytes - output.baselineRssBytes) / output.simulatedBytes;
    figures.splice(1, 0, { ...growthBase, value: growth, spread: null, samples: 1, counts });
  } else {
    figures.splice(1, 0, missingFigure(growthBase, "RSS before the kernel was created is not known"));
  }
  return figures;
}
