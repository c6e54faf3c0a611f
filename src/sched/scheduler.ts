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
//
// A thread may also sleep until a condition on the model holds
// (`thread.waitUntil`): the scheduler re-checks every such condition each
// time it picks a thread, so no wake call is needed. It stands for a retry
// loop whose attempts in between would fail the same way and change nothing.
//
// Each time a thread gets the processor the scheduler records a step: the
// label of the yield point it passed, or the label it blocked in followed by
// "(continued)". Threads add notes to their current step (what a call
// returned), and traces print the steps in run order.

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

/** One turn of a thread on the processor, in run order. */
export interface Step {
  readonly thread: number;
  readonly threadName: string;
  /** The yield point's label, "<label> (continued)" after a sleep, or "start". */
  readonly label: string;
  /**
   * Notes on the turn, such as a call's result, added by the thread and by
   * the scheduler when it sleeps. A function is a note built only when read
   * (see noteText), because most runs of an exploration are never printed.
   */
  readonly notes: (string | (() => string))[];
}

export interface RunResult {
  readonly status: "done" | "deadlock" | "failed";
  readonly decisions: readonly Decision[];
  /** For a deadlock: what each unfinished thread waits for. */
  readonly blocked: readonly { readonly thread: string; readonly waitsFor: string }[];
  /** For a failed run: the first error a thread or the strategy threw. */
  readonly error?: unknown;
  /** For a failed run: the thread that threw, absent when the strategy threw. */
  readonly failedThread?: string;
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
  /** For a thread in waitUntil: the condition that makes it ready. */
  condition: (() => boolean) | null = null;
  /** Label of the step this thread takes when it next gets the processor. */
  nextLabel = "start";
  /** The step this thread is taking or took last, null before it first ran. */
  step: Step | null = null;

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

  /**
   * Sleeps until `predicate` returns true, checked each time the scheduler
   * picks a thread; returns at once when it is true already. `label` names the call
   * in traces (the step after the wake is "<label> (continued)"). Throws
   * when this thread is not the running one, outside a run included,
   * because nothing would re-check the predicate.
   */
  waitUntil(label: string, waitsFor: string, predicate: () => boolean): Promise<void> {
    return this.scheduler.waitUntil(this, label, waitsFor, predicate);
  }

  /** Adds `text` to this thread's current step, for traces. */
  note(text: string | (() => string)): void {
    this.step?.notes.push(text);
  }
}

/** Returns the text of a step's note, building a lazy one. */
export function noteText(note: string | (() => string)): string {
  return typeof note === "function" ? note() : note;
}

export class Scheduler {
  readonly threads: SimThread[] = [];
  readonly decisions: Decision[] = [];
  /** Every turn a thread took, in run order. */
  readonly steps: Step[] = [];
  private current: SimThread | null = null;
  private readonly choose: ChooseFn;
  private finish: ((result: RunResult) => void) | null = null;
  private error: unknown = undefined;
  /** The thread whose error ended the run; null when the strategy threw. */
  private failedThread: string | null = null;
  private running = false;

  /** Throws TypeError unless `choose` is a function. */
  constructor(choose: ChooseFn) {
    if (typeof choose !== "function") throw new TypeError(`Scheduler: choose must be a strategy function such as fifo(), got ${typeof choose}`);
    this.choose = choose;
  }

  /** The thread running now, or null outside a run. */
  get currentThread(): SimThread | null {
    return this.current;
  }

  /** Adds a thread; it first runs when the scheduler picks it. */
  spawn(name: string, body: (thread: SimThread) => Promise<void>): SimThread {
    if (typeof name !== "string") throw new TypeError(`spawn: name must be a string, got ${typeof name}`);
    if (typeof body !== "function") throw new TypeError(`spawn: body must be an async function, got ${typeof body}`);
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
    thread.nextLabel = label;
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
    this.sleep(thread, waitsFor);
    const turn = this.turn(thread);
    this.dispatch(thread);
    return turn.then(() => value);
  }

  /** Blocks `thread`, the running one, until `predicate` returns true; see SimThread.waitUntil. */
  waitUntil(thread: SimThread, label: string, waitsFor: string, predicate: () => boolean): Promise<void> {
    this.checkRunning(thread, "waitUntil");
    if (predicate()) return Promise.resolve();
    thread.state = "blocked";
    thread.waitsFor = waitsFor;
    thread.condition = predicate;
    thread.labels.push(label);
    this.sleep(thread, waitsFor, `${label}: `);
    const turn = this.turn(thread);
    this.dispatch(thread);
    return turn;
  }

  /** Records that the running `thread` goes to sleep waiting for `waitsFor`. */
  private sleep(thread: SimThread, waitsFor: string, prefix = ""): void {
    thread.step?.notes.push(`${prefix}sleeps until ${waitsFor}`);
    thread.nextLabel = `${thread.labels[thread.labels.length - 1] ?? "start"} (continued)`;
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

    for (const thread of this.threads) {
      if (thread.condition !== null && thread.condition()) {
        thread.condition = null;
        thread.state = "ready";
      }
    }

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
    next.step = { thread: next.id, threadName: next.name, label: next.nextLabel, notes: [] };
    this.steps.push(next.step);
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
        if (this.error === undefined) {
          this.error = error;
          this.failedThread = thread.name;
        }
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
    let failure = {};
    if (status === "failed") failure = this.failedThread === null ? { error: this.error } : { error: this.error, failedThread: this.failedThread };
    const result: RunResult = { status, decisions: this.decisions, blocked, ...failure };
    finish(result);
  }
}
