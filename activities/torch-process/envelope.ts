// The torch protocol's envelope as this side reads it (docs/protocol.md): the version, one JSON line per event or
// response, and how a request ended; the same for the fork server and a fresh process.
import { constants as osConstants } from 'node:os';
import { z } from 'zod';
import type { MemoryExceeded } from '../memory-cap';

/** The protocol version every request and response carries (`v`); ttd_torch/__init__.py has the same. */
export const PROTOCOL_VERSION = 1;

/** One line a torch process writes: an event, or the response to request `id`. */
export const LineSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  id: z.string(),
  event: z.string().optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  ok: z.boolean().optional(),
  ms: z.number().optional(),
  result: z.record(z.string(), z.unknown()).optional(),
  error: z.object({ code: z.string(), message: z.string(), traceback: z.string().optional() }).optional(),
});

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
  | { kind: 'sandbox_unavailable'; reason: string };

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
export function toOutcome(msg: z.infer<typeof LineSchema>, opts: TorchRequestOptions): TorchOutcome | undefined {
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
