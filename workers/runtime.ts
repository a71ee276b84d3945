// The Temporal SDK's runtime for this process, quiet on stdout: the one part of workers/ that every CLI command which
// connects needs, kept apart from the workers and their activities so that such a command does not load them.
import { DefaultLogger, makeTelemetryFilterString, Runtime } from '@temporalio/worker';
import { terminalJson, terminalText } from '../render/terminal';
import { runtimeMetrics } from './telemetry';

let runtimeInstalled = false;

/** Sends the SDK's logging, the native core's included, to stderr at ERROR (DEBUG with TTD_LOG_LEVEL=debug):
 * the core would otherwise print warnings on stdout, where `--json` promises exactly one JSON object. */
export function installQuietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = process.env.TTD_LOG_LEVEL === 'debug' ? 'DEBUG' : 'ERROR';
  Runtime.install({
    // Signals are ours: `ttd run` cancels its run on Ctrl-C, `ttd worker` drains (the SDK's default would shut the
    // runtime down under us, and `ttd run` died with 'Channel has been shut down').
    shutdownSignals: [],
    logger: new DefaultLogger(level, (entry) =>
      // Messages can quote a model file's errors: escaped, as everything that reaches a terminal (render/terminal.ts).
      process.stderr.write(
        `${entry.level} ${terminalText(entry.message)}${entry.meta ? ` ${terminalJson(JSON.stringify(entry.meta))}` : ''}\n`,
      ),
    ),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: level, other: level }), forward: {} },
      ...runtimeMetrics(), // Prometheus, when `ttd worker --metrics-port` asked for it (workers/telemetry.ts)
    },
  });
}
