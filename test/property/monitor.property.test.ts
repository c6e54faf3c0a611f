// Property: runs with a monitor agree with the reference model after every
// step. They mix memory calls, accesses that block on faults, userfaultfd()
// with random event features, REGISTER and UNREGISTER (MISSING, WP), COPY,
// ZEROPAGE, MOVE, WRITEPROTECT, WAKE and close. The monitor reads faults and
// events, sometimes with a COPY right after a read (inside the
// mmap_changing window), and handles faults as a cooperative monitor does.
import { beforeAll, describe, it } from "vitest";
import { checkProperty } from "./run.js";
import { System } from "./system.js";

let sys: System;
beforeAll(async () => {
  sys = await System.create();
});

describe("userfaultfd with a monitor", () => {
  it("matches the reference model", async () => {
    await checkProperty(sys, { withMonitor: true, runs: 3300, seed: 0x5eed_0002, maxCommands: 30 });
  }, 180_000);
});
