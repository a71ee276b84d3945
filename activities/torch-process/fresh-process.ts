// A torch request in a fresh process of its own (TTD_TORCH_PROCESS=fresh): `python -m ttd_torch`, one request on
// stdin, its events and response on stdout.
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { Config } from '../../lib/config';
import { startProcess } from '../../lib/environments/subprocess';
import { capMemory } from '../memory-cap';
import { inductorDir, requestDirs, torchCommand, torchEnv, workRoot } from './command';
import { PROTOCOL_VERSION, ResponseLine, type RequestLine } from '../../lib/contract/protocol';
import { signalName, STDERR_TAIL_LINES, toOutcome, type TorchOutcome, type TorchRequestOptions } from './envelope';

/** Sends one request to a fresh torch process and waits for its response. */
export async function runInFreshProcess(
  config: Config,
  op: string,
  args: Record<string, unknown>,
  opts: TorchRequestOptions = {},
): Promise<TorchOutcome> {
  const id = randomUUID();
  // The request's own directories (its work dir, a compile's cache) are all it may write.
  const readWrite = requestDirs(args, [workRoot()], [inductorDir(config)]);
  const env = torchEnv(config, {}, opts.threads);
  const [command, commandArgs] = torchCommand(config, ['-m', 'ttd_torch'], readWrite, env);
  // Own process group, so cancellation ends every process the model file started (in the sandbox: bwrap, whose
  // death kills the sandbox).
  const proc = startProcess(command, commandArgs, {
    env,
    extendEnv: false,
    processGroup: true,
    signal: opts.signal,
    stderrTailLines: STDERR_TAIL_LINES,
  });
  const stdin = proc.stdin!;
  const pid = proc.subprocess.pid;
  const memory = opts.maxRssMb !== undefined && pid !== undefined ? capMemory(pid, opts.maxRssMb, () => proc.kill()) : undefined;
  let outcome: TorchOutcome | undefined;
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    let parsed;
    try {
      parsed = ResponseLine.safeParse(JSON.parse(line));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success || parsed.data.id !== id) {
      proc.stderr.push(`[protocol] unexpected line on stdout: ${line.slice(0, 200)}`);
      return;
    }
    outcome ??= toOutcome(parsed.data, opts);
    if (outcome) stdin.end();
  });
  stdin.on('error', () => undefined); // the process may exit before reading; the exit code tells
  const request: RequestLine = { v: PROTOCOL_VERSION, id, op, args };
  stdin.write(`${JSON.stringify(request)}\n`);

  const end = await proc.result;
  memory?.stop();
  if (outcome) return outcome;
  // bwrap ends with 128 + N when the process it ran was killed by signal N: say the signal, as without the sandbox.
  const bySignal = config.sandbox === 'on' && end.exitCode !== null && end.exitCode > 128 ? signalName(end.exitCode - 128) : undefined;
  return {
    kind: 'crashed',
    exitCode: bySignal ? null : end.exitCode,
    signal: bySignal ?? end.signal,
    stderrTail: end.stderrTail,
    spawnError: end.spawnError,
    memoryExceeded: memory?.exceeded,
  };
}
