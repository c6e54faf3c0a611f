// Property: with a monitor whose first userfaultfd has every event feature
// (FORK, REMAP, REMOVE, UNMAP), so that most fork, mremap, madvise and
// munmap calls block until the monitor reads their events, and ioctls meet
// the mmap_changing gate. Checked against the reference model after every
// step, errno values (EAGAIN from the gate) included.
import { beforeAll, describe, it } from "vitest";
import { ALL_EVENTS } from "./commands.js";
import { checkProperty } from "./run.js";
import { System } from "./system.js";

let sys: System;
beforeAll(async () => {
  sys = await System.create();
});

describe("userfaultfd events and the mmap_changing gate", () => {
  it("match the reference model", async () => {
    await checkProperty(sys, { withMonitor: true, features: ALL_EVENTS, runs: 3300, seed: 0x5eed_0003, maxCommands: 30 });
  }, 180_000);
});
