// The torch protocol's envelope as this side reads it (lib/contract/protocol.ts declares its lines): how a request
// ended, and what a response line means to the caller; the same for the fork server and a fresh process.
import { constants as osConstants } from 'node:os';
import type { ResponseLine } from '../../lib/contract/protocol';
import type { GateCode } from '../../lib/contract/gate-codes';
import type { MemoryExceeded } from '../memory-cap';

/** How a torch request ended: a result, an error reported by the server, or a process that died. */
export type TorchOutcome =
  | { kind: 'ok'; result: Record<string, unknown>; ms?: number }
  | { kind: 'error'; code: string; message: string; traceback: string }
  | {
      kind: 'crashed';
      exitCode: number | null;
      signal: string | null;
      stderrTail: string;
      spawnError?: string;
      /** Set when the stage was killed for passing TTD_TORCH_STAGE_MAX_RSS_MB. */
      memoryExceeded?: MemoryExceeded;
    }
  | { kind: typeof GateCode.sandboxUnavailable; reason: string };

/** Options of one request: progress events, cancellation, extra environment. */
export interface TorchRequestOptions {
  onEvent?: (event: string, data: Record<string, unknown>) => void;
  signal?: AbortSignal;
  /** The stage process's memory cap in MiB (activities/memory-cap.ts); none when absent. */
  maxRssMb?: number;
  /** The request's intra-op threads (lib/limits/capacity.ts, stageThreads); the configured count when absent. */
  threads?: number;
}

/** The lines of stderr kept for a crash report. */
export const STDERR_TAIL_LINES = 20;

// An event goes to the caller; a response becomes the outcome.
export function toOutcome(msg: ResponseLine, opts: TorchRequestOptions): TorchOutcome | undefined {
  if (msg.event !== undefined) opts.onEvent?.(msg.event, msg.data ?? {});
  else if (msg.ok === true) return { kind: 'ok', result: msg.result ?? {}, ...(msg.ms !== undefined ? { ms: msg.ms } : {}) };
  else if (msg.ok === false && msg.error)
    return { kind: 'error', code: msg.error.code, message: msg.error.message, traceback: msg.error.traceback ?? '' };
  return undefined;
}

/** The name of signal `n` (`SIGKILL`), for crash reports. */
export function signalName(n: number): string {
  return Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;
}
