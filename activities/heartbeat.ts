// Heartbeats for control-queue activities (store, promote, registry records): a host killed mid-activity is noticed
// within the heartbeat timeout (workflows/definitions.ts: storeStage) instead of at the end of start-to-close.
import { Context } from '@temporalio/activity';

/** How often a live activity beats: well inside the 15 s heartbeat timeout, and throttled by the SDK anyway. */
export const CONTROL_HEARTBEAT_EVERY_MS = 2_000;

// The details of each activity's last progress beat: a heartbeat replaces them, so every timer beat repeats them.
const progressOf = new WeakMap<Context, unknown>();

/** Records progress (the blobs done so far, say) in the current activity's heartbeat, at once. Outside an activity
 * (tests, tools) it does nothing. */
export function beatProgress(details: unknown): void {
  const ctx = current();
  if (!ctx) return;
  progressOf.set(ctx, details);
  ctx.heartbeat(details);
}

/** What the previous attempt's last heartbeat said (undefined on a first attempt or outside an activity). */
export function resumedProgress<T>(): T | undefined {
  return current()?.info.heartbeatDetails as T | undefined;
}

/** Runs `fn` with a heartbeat every CONTROL_HEARTBEAT_EVERY_MS for as long as it runs, so that one long single
 * operation (a blob streamed and re-hashed, a compare-and-swap riding out an outage) keeps the activity alive while
 * its process is, and a killed process stops beating. */
export async function heartbeating<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = current();
  if (!ctx) return fn();
  const beat = () => ctx.heartbeat(progressOf.get(ctx) ?? ctx.info.heartbeatDetails);
  beat();
  const timer = setInterval(beat, CONTROL_HEARTBEAT_EVERY_MS);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** Every activity of `activities`, heartbeating while it runs. */
export function allHeartbeating<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  return Object.fromEntries(
    Object.entries(activities).map(([name, fn]) => [name, (...args: never[]) => heartbeating(() => fn(...args))]),
  ) as T;
}

function current(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined; // not inside an activity
  }
}
