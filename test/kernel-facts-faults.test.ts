// Scenarios 13-22 of the Linux 6.18 measurements: page-fault messages,
// waking blocked threads with WAKE, COPY and UNREGISTER, the SIGBUS feature
// and faults taken by a system call in kernel mode. Each describe is named
// after the measured scenario, and every expected value is what the real
// kernel returned. Where the measurement was a timing ("after 100ms", a
// thread state of "S handle_userfault"), the test checks the logical fact
// instead: after all queued work has run, the access is still pending.

import { describe, expect, it } from "vitest";
import {
  EAGAIN, EINVAL, SIGBUS, SignalError, O_NONBLOCK, UFFD_FEATURE_EXACT_ADDRESS, UFFD_FEATURE_SIGBUS,
  UFFD_FEATURE_THREAD_ID, UFFD_USER_MODE_ONLY, UFFDIO_COPY_MODE_DONTWAKE, UFFDIO_REGISTER_MODE_MISSING, EFAULT,
} from "../src/index.js";
import { drain, settled, watch } from "./helpers.js";
import {
  PAGE, PLAIN, REGION, UNMAPPED, byte, copyPage, createEnv, mapAt, mapRegistered, readFault, sourcePages,
} from "./facts-helpers.js";

const MISSING = UFFDIO_REGISTER_MODE_MISSING;

describe("fault_read_event", () => {
  async function blockedRead() {
    const env = await createEnv(UFFD_FEATURE_THREAD_ID);
    mapRegistered(env, REGION, 4, MISSING);
    const src = await sourcePages(env, "C");
    const access = watch(env.target.read(REGION, 1));
    await drain();
    return { env, src, access };
  }

  it("reports a read fault", async () => {
    const { env } = await blockedRead();
    const msg = readFault(env.uffd);
    expect(msg.flags, "flags").toBe(0);
    expect(msg.address - REGION, "address_off").toBe(0);
    expect(msg.ptid, "ptid is the faulting thread").toBe(env.target.pid);
  });

  it("blocks the reader", async () => {
    // Measured as the thread state "S handle_userfault".
    const { access } = await blockedRead();
    expect(access.state).toBe("pending");
  });

  it("poll after read is 0", async () => {
    const { env } = await blockedRead();
    readFault(env.uffd);
    expect(env.uffd.poll(), "no re-delivery").toBe(0);
    expect(env.uffd.read(), "second read").toEqual({ errno: EAGAIN });
  });

  it("COPY resumes the thread", async () => {
    const { env, src, access } = await blockedRead();
    readFault(env.uffd);
    expect(copyPage(env.uffd, REGION, src)).toEqual({ errno: 0, copy: PAGE });
    const data = await settled(access);
    expect(data[0], "value").toBe(byte("C"));
  });
});

describe("fault_write_flags_address", () => {
  it("reports a write fault", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    const access = watch(env.target.write(REGION + 4219, new Uint8Array([byte("w")])));
    await drain();
    const msg = readFault(env.uffd);
    expect(msg.flags, "flags").toBe(1);
    expect(msg.address - REGION, "address_off").toBe(4096);
    expect(msg.ptid, "ptid without THREAD_ID").toBe(0);
    expect(access.state).toBe("pending");
  });

  it("EXACT_ADDRESS keeps the offset", async () => {
    const env = await createEnv(UFFD_FEATURE_EXACT_ADDRESS);
    mapRegistered(env, REGION, 4, MISSING);
    const access = watch(env.target.read(REGION + 8315, 1));
    await drain();
    const msg = readFault(env.uffd);
    expect(msg.flags, "flags").toBe(0);
    expect(msg.address - REGION, "address_off").toBe(8315);
    expect(access.state).toBe("pending");
  });
});

describe("wake_without_fill", () => {
  it("faults again after WAKE", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    const access = watch(env.target.read(REGION, 1));
    await drain();
    readFault(env.uffd);

    expect(env.uffd.wake({ start: REGION, len: PAGE })).toEqual({ errno: 0 });
    await drain();
    expect(access.state, "thread done after WAKE").toBe("pending");
    const again = readFault(env.uffd);
    expect(again.address - REGION, "second event address_off").toBe(0);
  });
});

describe("copy_dontwake_then_wake", () => {
  it("wakes only on WAKE", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    const src = await sourcePages(env, "C");
    const access = watch(env.target.read(REGION, 1));
    await drain();
    readFault(env.uffd);

    expect(copyPage(env.uffd, REGION, src, PAGE, UFFDIO_COPY_MODE_DONTWAKE)).toEqual({ errno: 0, copy: PAGE });
    // Measured as "not done after 100ms".
    await drain();
    expect(access.state, "thread done after COPY").toBe("pending");
    expect(env.uffd.read(), "extra event").toEqual({ errno: EAGAIN });

    expect(env.uffd.wake({ start: REGION, len: PAGE })).toEqual({ errno: 0 });
    const data = await settled(access);
    expect(data[0], "value").toBe(byte("C"));
  });
});

describe("wake_args", () => {
  async function setup() {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    mapAt(env, PLAIN, 2);
    return env;
  }

  it("rejects an unaligned start", async () => {
    const env = await setup();
    expect(env.uffd.wake({ start: REGION + 1, len: PAGE }).errno).toBe(EINVAL);
  });

  it("rejects len 0", async () => {
    const env = await setup();
    expect(env.uffd.wake({ start: REGION, len: 0 }).errno).toBe(EINVAL);
  });

  it("accepts a range with no waiters", async () => {
    const env = await setup();
    expect(env.uffd.wake({ start: REGION, len: PAGE }).errno).toBe(0);
  });

  it("accepts an unregistered range", async () => {
    const env = await setup();
    expect(env.uffd.wake({ start: PLAIN, len: PAGE }).errno).toBe(0);
  });

  it("accepts an unmapped range", async () => {
    const env = await setup();
    expect(env.uffd.wake({ start: UNMAPPED, len: PAGE }).errno).toBe(0);
  });
});

describe("unregister_wakes_blocked", () => {
  it("resumes the thread with zeros", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    const access = watch(env.target.read(REGION, 1));
    await drain();
    readFault(env.uffd);

    expect(env.uffd.unregister({ start: REGION, len: 4 * PAGE })).toEqual({ errno: 0 });
    const data = await settled(access);
    expect(data[0], "value").toBe(0);
    expect(env.uffd.read(), "further events").toEqual({ errno: EAGAIN });
  });
});

describe("sigbus_feature", () => {
  it("raises SIGBUS without an event", async () => {
    const env = await createEnv(UFFD_FEATURE_SIGBUS);
    mapRegistered(env, REGION, 4, MISSING);
    const src = await sourcePages(env, "a");
    const access = watch(env.target.read(REGION, 1));
    await drain();

    expect(access.state, "access ended").toBe("rejected");
    expect(access.reason).toBeInstanceOf(SignalError);
    expect((access.reason as SignalError).signo, "signal").toBe(SIGBUS);
    expect(env.uffd.read(), "event").toEqual({ errno: EAGAIN });
    expect(copyPage(env.uffd, REGION, src), "COPY afterwards").toEqual({ errno: 0, copy: PAGE });
  });
});

describe("kernel_mode_fault", () => {
  it("blocks a syscall until COPY", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    const src = await sourcePages(env, "a");
    // write(2) of 16 bytes from the registered page reads them with copy_from_user.
    const syscall = watch(env.target.copyFromUser(REGION, 16));
    await drain();

    const msg = readFault(env.uffd);
    expect(msg.flags, "flags").toBe(0);
    expect(syscall.state, "syscall blocked").toBe("pending");
    expect(copyPage(env.uffd, REGION, src).errno, "COPY").toBe(0);
    const result = await settled(syscall);
    expect(result.errno, "syscall errno").toBe(0);
    expect(result.data?.length, "bytes written").toBe(16);
  });

  it("USER_MODE_ONLY gives EFAULT", async () => {
    const env = await createEnv(0, O_NONBLOCK | UFFD_USER_MODE_ONLY);
    mapRegistered(env, REGION, 4, MISSING);
    const syscall = watch(env.target.copyFromUser(REGION, 16));
    const result = await settled(syscall);
    expect(result.errno).toBe(EFAULT);
    expect(env.uffd.read(), "event").toEqual({ errno: EAGAIN });
  });
});
