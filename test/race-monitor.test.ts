// The reference lazy-restore monitor outside the race scenarios: what it
// does with a page that is present already, and how it ends.

import { describe, expect, it } from "vitest";
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, UFFD_API, UFFDIO_REGISTER_MODE_MISSING, type Kernel, type Process, type Userfaultfd } from "../src/index.js";
import { spawnLazyRestore } from "../src/monitor/lazy-restore.js";
import { Scheduler, noteText } from "../src/sched/scheduler.js";
import { fifo } from "../src/sched/strategies.js";
import { createKernel, pageOf } from "./helpers.js";

const PAGE = 4096;
const REGION = 0x1000_0000;
const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;

interface Env {
  kernel: Kernel;
  target: Process;
  uffd: Userfaultfd;
  /** Target page address → the monitor's copy of its snapshot (page i filled with 0x41 + i). */
  snapshot: Map<number, number>;
}

/** Creates a target with two registered pages, page 0 written with 0x70 before registration, and a monitor with a two-page snapshot. */
async function setup(): Promise<Env> {
  const kernel = await createKernel();
  const target = kernel.createProcess();
  const monitor = kernel.createProcess();
  expect(target.mmap(2 * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
  await target.write(REGION, pageOf(0x70));
  const own = target.userfaultfd();
  expect(own.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
  const uffd = own.dupInto(monitor);
  own.close();
  expect(uffd.register({ start: REGION, len: 2 * PAGE, mode: UFFDIO_REGISTER_MODE_MISSING }).errno).toBe(0);
  const staging = monitor.mmap(2 * PAGE);
  await monitor.write(staging, pageOf(0x41));
  await monitor.write(staging + PAGE, pageOf(0x42));
  return { kernel, target, uffd, snapshot: new Map([[REGION, staging], [REGION + PAGE, staging + PAGE]]) };
}

describe("LazyRestoreMonitor", () => {
  it("wakes after EEXIST", async () => {
    const env = await setup();
    const scheduler = new Scheduler(fifo());
    env.kernel.scheduler = scheduler;
    let done = false;
    const reads: Uint8Array[] = [];
    scheduler.spawn("target", async (t) => {
      reads.push(await t.op("read page 1", () => env.target.read(REGION + PAGE, PAGE)));
      done = true;
    });
    const monitor = spawnLazyRestore(scheduler, { uffd: env.uffd, snapshot: env.snapshot, targetDone: () => done });
    const result = await scheduler.run();

    expect(result.status).toBe("done");
    expect(reads).toEqual([pageOf(0x42)]);
    const steps = scheduler.steps.filter((step) => step.threadName === "monitor").map((step) => [step.label, ...step.notes.map(noteText)].join(" — "));
    expect(steps).toEqual([
      "start",
      "read target's uffd — PAGEFAULT at 0x10001000",
      "COPY 0x10001000 for target's fault — done",
      "COPY 0x10000000 for target (background) — EEXIST",
      "WAKE 0x10000000 for target — poll: sleeps until a message or the end of the target",
      "poll (continued)",
    ]);
    expect(monitor.processes[0]!.missing.size, "pages still missing").toBe(0);
  });

  it("keeps the target's own data", async () => {
    const env = await setup();
    const scheduler = new Scheduler(fifo());
    env.kernel.scheduler = scheduler;
    let done = false;
    const reads: Uint8Array[] = [];
    scheduler.spawn("target", async (t) => {
      reads.push(await t.op("read page 0", () => env.target.read(REGION, PAGE)));
      done = true;
    });
    spawnLazyRestore(scheduler, { uffd: env.uffd, snapshot: env.snapshot, targetDone: () => done });
    await scheduler.run();

    expect(reads).toEqual([pageOf(0x70)]);
  });

  it("stops when the target is done", async () => {
    const env = await setup();
    const scheduler = new Scheduler(fifo());
    env.kernel.scheduler = scheduler;
    const monitor = spawnLazyRestore(scheduler, { uffd: env.uffd, snapshot: env.snapshot, targetDone: () => true });
    const result = await scheduler.run();

    expect(result.status).toBe("done");
    expect(monitor.stats).toEqual({ messages: 0, copies: 0, zeropages: 0, eagain: 0 });
  });

  it("serves a fault from the snapshot", async () => {
    const env = await setup();
    const scheduler = new Scheduler(fifo());
    env.kernel.scheduler = scheduler;
    let done = false;
    scheduler.spawn("target", async (t) => {
      await t.op("read page 1", () => env.target.read(REGION + PAGE, 1));
      done = true;
    });
    const monitor = spawnLazyRestore(scheduler, { uffd: env.uffd, snapshot: env.snapshot, targetDone: () => done });
    await scheduler.run();

    expect(monitor.stats).toEqual({ messages: 1, copies: 1, zeropages: 0, eagain: 0 });
  });
});
