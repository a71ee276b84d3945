// The one subprocess wrapper: runs a request on the torch stage server (`python -m ttd_torch`) over JSON lines.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Config } from '../lib/config';

const PROTOCOL_VERSION = 1;
const STDERR_TAIL_LINES = 20;

const LineSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  id: z.string(),
  event: z.string().optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  ok: z.boolean().optional(),
  result: z.record(z.string(), z.unknown()).optional(),
  error: z.object({ code: z.string(), message: z.string(), traceback: z.string().optional() }).optional(),
});

/** How a torch request ended: a result, an error reported by the server, or a process that died. */
export type TorchOutcome =
  | { kind: 'ok'; result: Record<string, unknown> }
  | { kind: 'error'; code: string; message: string; traceback: string }
  | { kind: 'crashed'; exitCode: number | null; signal: string | null; stderrTail: string; spawnError?: string };

/** Options of one request: progress events, cancellation, extra environment. */
export interface TorchRequestOptions {
  onEvent?: (event: string, data: Record<string, unknown>) => void;
  signal?: AbortSignal;
}

/** Sends one request to a fresh torch process and waits for its response. */
export async function runTorchRequest(
  config: Config,
  op: string,
  args: Record<string, unknown>,
  opts: TorchRequestOptions = {},
): Promise<TorchOutcome> {
  const id = randomUUID();
  const child = spawn(config.python, ['-m', 'ttd_torch'], {
    env: { ...process.env, PYTHONPATH: config.pythonPackageDir, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // own process group, so cancellation ends every process the model file started
  });
  const stderr: string[] = [];
  let spawnError: string | undefined;
  const closed = new Promise<[number | null, string | null]>((resolve) => {
    child.on('error', (err) => {
      spawnError = err.message;
      resolve([null, null]);
    });
    child.on('close', (code, sig) => resolve([code, sig]));
  });
  createInterface({ input: child.stderr }).on('line', (line) => {
    stderr.push(line);
    if (stderr.length > STDERR_TAIL_LINES) stderr.shift();
  });
  const kill = () => {
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  };
  opts.signal?.addEventListener('abort', kill, { once: true });

  let outcome: TorchOutcome | undefined;
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    let parsed;
    try {
      parsed = LineSchema.safeParse(JSON.parse(line));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success || parsed.data.id !== id) {
      stderr.push(`[protocol] unexpected line on stdout: ${line.slice(0, 200)}`);
      return;
    }
    const msg = parsed.data;
    if (msg.event !== undefined) opts.onEvent?.(msg.event, msg.data ?? {});
    else if (msg.ok === true) outcome = { kind: 'ok', result: msg.result ?? {} };
    else if (msg.ok === false && msg.error)
      outcome = { kind: 'error', code: msg.error.code, message: msg.error.message, traceback: msg.error.traceback ?? '' };
    if (outcome) child.stdin.end();
  });
  child.stdin.on('error', () => undefined); // the process may exit before reading; the exit code tells
  child.stdin.write(`${JSON.stringify({ v: PROTOCOL_VERSION, id, op, args })}\n`);

  const [exitCode, signal] = await closed;
  opts.signal?.removeEventListener('abort', kill);
  if (outcome) return outcome;
  return { kind: 'crashed', exitCode, signal, stderrTail: stderr.join('\n'), spawnError };
}
