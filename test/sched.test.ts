// The deterministic scheduler: steps recorded in run order with their
// notes, condition waits, which thread failed, and deadlock detection when
// every unfinished thread sleeps in the kernel or on a condition.

import { describe, expect, it } from "vitest";
import {
  MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, UFFD_API, UFFD_FEATURE_EVENT_UNMAP, UFFDIO_REGISTER_MODE_MISSING,
} from "../src/index.js";
import { runViolations } from "../src/monitor/oracle.js";
import { Scheduler } from "../src/sched/scheduler.js";
import { ReplayMismatch, fifo, replay } from "../src/sched/strategies.js";
import { createKernel } from "./helpers.js";

const PAGE = 4096;
const REGION = 0x1000_0000;
const OWN = 0x3000_0000;
const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;

describe("steps", () => {
  it("records labels in run order", async () => {
    const scheduler = new Scheduler(fifo());
    scheduler.spawn("a", async (t) => {
      await t.yield("a1");
      await t.yield("a2");
    });
    scheduler.spawn("b", async (t) => {
      await t.yield("b1");
    });
    const result = await scheduler.run();

    expect(result.status).toBe("done");
    expect(scheduler.steps.map((step) => `${step.threadName}:${step.label}`)).toEqual(["a:start", "a:a1", "a:a2", "b:start", "b:b1"]);
  });

  it("keeps notes on the current step", async () => {
    const scheduler = new Scheduler(fifo());
    scheduler.spawn("a", async (t) => {
      t.note("before");
      await t.yield("a1");
      t.note("after");
    });
    await scheduler.run();

    expect(scheduler.steps.map((step) => step.notes)).toEqual([["before"], ["after"]]);
  });

  it("labels the step after a sleep", async () => {
    const scheduler = new Scheduler(replay([0, 1, 0]));
    let flag = false;
    scheduler.spawn("waiter", async (t) => {
      await t.yield("first");
      await t.waitUntil("wait", "the flag", () => flag);
    });
    scheduler.spawn("setter", async (t) => {
      await t.op("set", () => {
        flag = true;
      });
    });
    await scheduler.run();

    const labels = scheduler.steps.map((step) => `${step.threadName}:${step.label}`);
    expect(labels).toEqual(["waiter:start", "setter:start", "waiter:first", "setter:set", "waiter:wait (continued)"]);
    expect(scheduler.steps[2]!.notes).toEqual(["wait: sleeps until the flag"]);
  });
});

describe("waitUntil", () => {
  it("sleeps until the condition holds", async () => {
    const scheduler = new Scheduler(fifo());
    const log: string[] = [];
    let flag = false;
    scheduler.spawn("waiter", async (t) => {
      await t.waitUntil("wait", "the flag", () => flag);
      log.push("waiter resumed");
    });
    scheduler.spawn("setter", async (t) => {
      await t.op("set", () => {
        log.push("setter sets the flag");
        flag = true;
      });
    });
    const result = await scheduler.run();

    expect(result.status).toBe("done");
    expect(log).toEqual(["setter sets the flag", "waiter resumed"]);
  });

  it("returns at once when the condition holds", async () => {
    const scheduler = new Scheduler(fifo());
    scheduler.spawn("waiter", async (t) => {
      await t.waitUntil("wait", "nothing", () => true);
    });
    const result = await scheduler.run();

    expect(result.status).toBe("done");
    expect(scheduler.steps).toHaveLength(1);
  });

  it("deadlocks on a condition that never holds", async () => {
    const scheduler = new Scheduler(fifo());
    scheduler.spawn("waiter", (t) => t.waitUntil("wait", "a flag nobody sets", () => false));
    const result = await scheduler.run();

    expect(result.status).toBe("deadlock");
    expect(result.blocked).toEqual([{ thread: "waiter", waitsFor: "a flag nobody sets" }]);
  });

  it("throws outside a run", async () => {
    const scheduler = new Scheduler(fifo());
    const thread = scheduler.spawn("idle", async () => {});

    expect(() => thread.waitUntil("wait", "anything", () => false)).toThrow("thread idle is not the running thread");
  });
});

describe("failures", () => {
  it("names the thread that threw", async () => {
    const scheduler = new Scheduler(fifo());
    scheduler.spawn("ok", async (t) => t.yield("step"));
    scheduler.spawn("broken", async () => {
      throw new RangeError("bad value");
    });
    const result = await scheduler.run();

    expect(result.status).toBe("failed");
    expect(result.failedThread).toBe("broken");
    expect(runViolations(result)).toEqual(["thread broken failed: RangeError: bad value"]);
  });

  it("has no thread for a strategy error", async () => {
    const scheduler = new Scheduler(replay([]));
    scheduler.spawn("a", async (t) => t.yield("a1"));
    scheduler.spawn("b", async (t) => t.yield("b1"));
    const result = await scheduler.run();

    expect(result.status).toBe("failed");
    expect(result.failedThread).toBeUndefined();
    expect(result.error).toBeInstanceOf(ReplayMismatch);
  });
});

describe("deadlock", () => {
  it("names what each thread waits for", async () => {
    // The monitor unmaps a page of its own that it registered with
    // EVENT_UNMAP: munmap sleeps until someone reads the UNMAP event, and
    // the only reader of that userfaultfd is the monitor itself. The target
    // meanwhile faults and waits for the monitor.
    const kernel = await createKernel();
    const target = kernel.createProcess();
    const monitor = kernel.createProcess();
    expect(target.mmap(2 * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
    const targetOwn = target.userfaultfd();
    expect(targetOwn.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
    const uffd = targetOwn.dupInto(monitor);
    targetOwn.close();
    expect(uffd.register({ start: REGION, len: 2 * PAGE, mode: UFFDIO_REGISTER_MODE_MISSING }).errno).toBe(0);
    expect(monitor.mmap(PAGE, { flags: FIXED, address: OWN })).toBe(OWN);
    const own = monitor.userfaultfd();
    expect(own.api({ api: UFFD_API, features: UFFD_FEATURE_EVENT_UNMAP }).errno).toBe(0);
    expect(own.register({ start: OWN, len: PAGE, mode: UFFDIO_REGISTER_MODE_MISSING }).errno).toBe(0);

    const scheduler = new Scheduler(fifo());
    kernel.scheduler = scheduler;
    scheduler.spawn("target", async (t) => {
      await t.op("read", () => target.read(REGION, 1));
    });
    scheduler.spawn("monitor", async (t) => {
      await t.op("munmap own page", () => monitor.munmap(OWN, PAGE));
      await t.op("read target's uffd", () => uffd.readWait());
    });
    const result = await scheduler.run();

    expect(result.status).toBe("deadlock");
    expect(result.blocked).toEqual([
      { thread: "target", waitsFor: "a wake of the fault at 0x10000000" },
      { thread: "monitor", waitsFor: "a read of event 0x16" },
    ]);
    expect(runViolations(result)).toEqual(["deadlock: target waits for a wake of the fault at 0x10000000; monitor waits for a read of event 0x16"]);
  });
});
