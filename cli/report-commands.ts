// `ttd report RUN -o FILE.html`: one self-contained HTML file per run (no network needed to read it).
import { rename, rm, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import { openStore } from '../lib/config';
import { loadTemporalConfig, type TemporalConfig } from '../temporal/config';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { renderReport } from '../render/report-html';
import { terminalLine } from '../render/terminal';
import { ensureServer, hasEmbeddedHistory, listening } from '../temporal/dev-server';
import { failWith, printJson, writeOut, writeErr } from './output';
import { reportForRun } from './report-data';
import { connectTemporal } from './temporal';

/** Runs `fn` with a Temporal client when a server is reachable (starting the embedded one over $TTD_HOME's
 * SQLite if none runs and that SQLite exists), else without one: reports of registered versions come from the store
 * alone. A home where no server ever ran holds no history: nothing is started there and nothing is written. */
export async function withOptionalClient<T>(
  config: TemporalConfig,
  fn: (client: Client | undefined, why?: string) => Promise<T>,
): Promise<T> {
  if (!config.temporalAddress && !hasEmbeddedHistory(config) && !(await listening(config.temporalPort)))
    return fn(undefined, `no Temporal server is configured or running, and none has run in ${config.home}`);
  let server;
  let temporal;
  try {
    server = await ensureServer(config);
    temporal = await connectTemporal(config, server.address);
  } catch (err) {
    const why = (err as Error).message.split('\n')[0];
    writeErr(`ttd: Temporal is not reachable (${why}); reading the store only\n`);
    await server?.stop();
    return fn(undefined, `Temporal is not reachable: ${why}`);
  }
  try {
    return await fn(temporal.client);
  } finally {
    await temporal.close();
    await server.stop();
  }
}

/** `ttd report RUN [-o FILE] [--json]`. */
export async function reportCommand(runId: string, opts: { output?: string; json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const config = loadTemporalConfig();
    const out = opts.output ? resolve(opts.output) : undefined;
    if (out && !existsSync(dirname(out))) {
      throw new TtdError(
        ErrorCode.outputInvalid,
        `-o ${opts.output}: the directory '${dirname(out)}' does not exist; expected a path in an existing directory`,
      );
    }
    const store = openStore(config);
    const data = await withOptionalClient(config, (client, why) => reportForRun(client, store, config, runId, why));
    if (json && !out) return printJson(data);
    const html = renderReport(data);
    if (!out) return void writeOut(html);
    // Written whole or not at all: a temporary file beside the target, then a rename.
    const tmp = `${out}.partial-${process.pid}`;
    try {
      await writeFile(tmp, html);
      await rename(tmp, out);
    } finally {
      await rm(tmp, { force: true });
    }
    if (json) printJson({ runId, status: data.status, report: out, bytes: Buffer.byteLength(html) });
    else writeErr(`report of ${terminalLine(runId)} (${terminalLine(data.status)}) written to ${terminalLine(out)}\n`);
  } catch (err) {
    failWith(err, json);
  }
}
