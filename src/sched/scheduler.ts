// A deterministic scheduler for simulated threads.
//
// A simulated thread is an async function. Only one thread runs at a time:
// it runs until it reaches a yield point (`thread.yield()`, which scenario
// code calls between system calls) or blocks in the kernel (a fault waiting
// for a wake, a producer waiting for its event to be read, a read waiting
// for a message). Then the scheduler picks the next thread to run among the
// ready ones, through a strategy, and records the choice. Because every wake
// goes through `waitFor`, the scheduler learns synchronously which threads
// became ready, so the run depends on nothing but the choices: the same
// choices replay the same run. When no thread is ready and some are still
// blocked, the run stops with a deadlock naming what each thread waits for.

/**
 * Picks which ready thread runs next: an index into `ready` (ordered by
 * thread id). `previous` is the index in `ready` of the thread that just gave
 * up the processor at a yield point, or -1 when it blocked or finished.
 */
export type ChooseFn = (ready: readonly SimThread[], decision: number, previous: number) => number;

export type ThreadState = "new" | "ready" | "running" | "blocked" | "done" | "failed";

export interface Decision {
  /** Ids of the threads that were ready, in order. */
  readonly ready: readonly number[];
  /** Index into `ready` of the thread that ran. */
  readonly chosen: number;
  /** Whether the choice took the processor from a thread that could have gone on. */
  readonly preemption: boolean;
}

export interface RunResult {
  readonly status: "done" | "deadlock" | "failed";
  readonly decisions: readonly Decision[];
  /** For a deadlock: what each unfinished thread waits for. */
  readonly blocked: readonly { readonly thread: string; readonly waitsFor: string }[];
  /** For a failed run: the first error a thread threw. */
  readonly error?: unknown;
}

export class SimThread {
  readonly id: number;
  readonly name: string;
  state: ThreadState = "new";
  /** The condition a blocked thread waits for. */
  waitsFor = "";
  /** Labels of the yield points this thread passed, for traces. */
  readonly labels: string[] = [];
  private readonly scheduler: Scheduler;
  readonly body: (thread: SimThread) => Promise<void>;
  /** Set when the scheduler gives this thread the processor before it asked. */
  granted = false;
  resume: (() => void) | null = null;

  constructor(scheduler: Scheduler, id: number, name: string, body: (thread: SimThread) => Promise<void>) {
    this.scheduler = scheduler;
    this.id = id;
    this.name = name;
    this.body = body;
  }

  /** Gives the scheduler a yield point, where it may run another ready thread first. */
  yield(label: string): Promise<void> {
    return this.scheduler.yieldPoint(this, label);
  }

  /** Yields, then runs `operation` (one system call or ioctl) as this thread. */
  async op<T>(label: string, operation: () => T): Promise<Awaited<T>> {
    await this.yield(label);
    return await operation();
  }
}

export class Scheduler {
  readonly threads: SimThread[] = [];
  readonly decisions: Decision[] = [];
  private current: SimThread | null = null;
  private readonly choose: ChooseFn;
  private finish: ((result: RunResult) => void) | null = null;
  private error: unknown = undefined;
  private running = false;

  constructor(choose: ChooseFn) {
    this.choose = choose;
  }

  /** The thread running now, or null outside a run. */
  get currentThread(): SimThread | null {
    return this.current;
  }

  /** Adds a thread; it first runs when the scheduler picks it. */
  spawn(name: string, body: (thread: SimThread) => Promise<void>): SimThread {
    const thread = new SimThread(this, this.threads.length, name, body);
    this.threads.push(thread);
    return thread;
  }

  /** Runs every thread to completion, a deadlock, or the first error. */
  run(): Promise<RunResult> {
    if (this.running) throw new Error("Scheduler.run: already running");
    this.running = true;
    return new Promise<RunResult>((resolve) => {
      this.finish = resolve;
      this.dispatch(null);
    });
  }

  /** Called by the running thread at a yield point. */
  yieldPoint(thread: SimThread, label: string): Promise<void> {
    this.checkRunning(thread, "yield");
    thread.labels.push(label);
    thread.state = "ready";
    const turn = this.turn(thread);
    this.dispatch(thread);
    return turn;
  }

  /**
   * Blocks the running thread until `executor`'s wake function is called,
   * then waits for the scheduler to pick it again. Outside a run (no
   * current thread) it is a plain promise.
   */
  waitFor<T>(waitsFor: string, executor: (wake: (value: T) => void) => void): Promise<T> {
    const thread = this.current;
    if (thread === null) return new Promise<T>(executor);
    thread.state = "blocked";
    thread.waitsFor = waitsFor;
    let value!: T;
    let woken = false;
    const wake = (result: T) => {
      if (woken) return;
      woken = true;
      value = result;
      if (thread.state === "blocked") thread.state = "ready";
    };
    executor(wake);
    if (woken) {
      // Woken before it slept: it goes on, as a waiter that finds its condition true.
      thread.state = "running";
      return Promise.resolve(value);
    }
    const turn = this.turn(thread);
    this.dispatch(thread);
    return turn.then(() => value);
  }

  private checkRunning(thread: SimThread, call: string): void {
    if (this.current !== thread) throw new Error(`${call}: thread ${thread.name} is not the running thread`);
  }

  /** Returns a promise that settles when the scheduler gives `thread` the processor. */
  private turn(thread: SimThread): Promise<void> {
    if (thread.granted) {
      thread.granted = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      thread.resume = resolve;
    });
  }

  /** Picks the next thread after `previous` gave up the processor, and starts or resumes it. */
  private dispatch(previous: SimThread | null): void {
    this.current = null;
    if (this.error !== undefined) return this.end("failed");
    const ready = this.threads.filter((thread) => thread.state === "ready" || thread.state === "new");
    if (ready.length === 0) {
      const unfinished = this.threads.filter((thread) => thread.state !== "done");
      return this.end(unfinished.length === 0 ? "done" : "deadlock");
    }
    let chosen = 0;
    if (ready.length > 1) {
      const previousIndex = previous === null ? -1 : ready.indexOf(previous);
      try {
        chosen = this.choose(ready, this.decisions.length, previousIndex);
      } catch (error) {
        this.error = error;
        return this.end("failed");
      }
      if (!Number.isInteger(chosen) || chosen < 0 || chosen >= ready.length) {
        this.error = new RangeError(`scheduler strategy chose ${chosen} of ${ready.length} ready threads`);
        return this.end("failed");
      }
      const preemption = previousIndex >= 0 && chosen !== previousIndex;
      this.decisions.push({ ready: ready.map((thread) => thread.id), chosen, preemption });
    }
    const next = ready[chosen]!;
    this.current = next;
    if (next.state === "new") {
      next.state = "running";
      this.start(next);
      return;
    }
    next.state = "running";
    const resume = next.resume;
    next.resume = null;
    if (resume !== null) resume();
    else next.granted = true;
  }

  private start(thread: SimThread): void {
    let body: Promise<void>;
    try {
      body = thread.body(thread);
    } catch (error) {
      body = Promise.reject(error);
    }
    body.then(
      () => {
        thread.state = "done";
        if (this.current === thread) this.dispatch(thread);
      },
      (error: unknown) => {
        thread.state = "failed";
        if (this.error === undefined) this.error = error;
        if (this.current === thread) this.dispatch(thread);
      },
    );
  }

  private end(status: RunResult["status"]): void {
    const finish = this.finish;
    if (finish === null) return;
    this.finish = null;
    const blocked = this.threads
      .filter((thread) => thread.state === "blocked")
      .map((thread) => ({ thread: thread.name, waitsFor: thread.waitsFor }));
    const result: RunResult = { status, decisions: this.decisions, blocked, ...(status === "failed" ? { error: this.error } : {}) };
    finish(result);
  }
}
