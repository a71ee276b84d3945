// The `ttd` command line: parse, call, print. No business logic lives here.
import { Command } from 'commander';
import { ErrorCode } from '../lib/contract/errors';
import { failWith, indentLater, printJson, writeErr, writeOut } from './output';

// Each command's module loads when that command runs, so that `ttd --help`, a usage error or a registry command does
// not load the Temporal SDK, the workers and their activities (about 0.6 CPU-s of every command's start).
const registry = () => import('./registry-commands.js');
const runs = () => import('./run-commands.js');
const schedules = () => import('./schedule-commands.js');
const servers = () => import('./server-commands.js');
const provenance = () => import('./provenance-commands.js');

/** The action named `name` of the module `load` imports, loaded when commander calls it. */
function lazy<M, K extends keyof M>(load: () => Promise<M>, name: K): (...args: unknown[]) => Promise<void> {
  return async (...args) => {
    const action = (await load())[name] as (...a: unknown[]) => unknown;
    await action(...args);
  };
}

/** Whether the command line asks for JSON: then every outcome, a usage error included, is one JSON object on stdout. */
const JSON_WANTED = process.argv.slice(2).includes('--json');

async function main(): Promise<void> {
  const program = new Command('ttd')
    .description('train · trace · deploy: PyTorch to a verified, promoted TorchScript artifact, on Temporal')
    .showHelpAfterError()
    // Commander echoes arguments in its errors: they pass the same terminal filter as everything else.
    .configureOutput({ writeOut, writeErr, outputError: (text, write) => write(indentLater(text)) })
    .exitOverride((err) => {
      if (err.exitCode === 0) process.exit(0); // --help, --version
      // A usage error (unknown command or option, missing argument): commander has told people on stderr; a script
      // that asked for --json still gets its one JSON object.
      if (JSON_WANTED)
        printJson({ status: 'failed', error: { code: ErrorCode.argumentInvalid, message: err.message.replace(/^error: /, '') } });
      process.exit(2);
    });
  const ref = 'MODEL, MODEL@ALIAS or MODEL:VERSION';

  program
    .command('run')
    .argument('<spec>', 'pipeline.yaml (or .json)')
    .option('--json', 'print exactly one JSON object on stdout')
    .option('--detach', 'start the run and return at once; running workers do the work')
    .option('--trigger <trigger>', 'what started the run: manual, ci or schedule', 'manual')
    .option('--commit <sha>', 'the commit the run is for (with --trigger ci, part of the run id)')
    .option('--force', 'with --trigger ci: start a new run even if this commit and spec already ran')
    .option('--no-cache', 'do every torch stage again, even when an earlier run had the same inputs')
    .description('run a pipeline: train, trace, verify, optimize, fusion, store, check parity, promote')
    .action(lazy(() => import('./run.js'), 'runCommand'));
  program
    .command('report')
    .argument('<run>', 'a run id (ttd runs lists them)')
    .option('-o, --output <file>', 'write the HTML report here (default: stdout)')
    .option('--json', 'print the report data as JSON (with -o: a summary of what was written)')
    .description('one self-contained HTML report of a run: loss curve, gates, IR, fusion, parity, timings')
    .action(lazy(() => import('./report-commands.js'), 'reportCommand'));
  program
    .command('ui')
    .option('--port <n>', 'port to listen on', '8780')
    .option('--host <host>', 'address to bind (read-only; loopback unless you say otherwise)', '127.0.0.1')
    .option(
      '--allow-host <name>',
      'also answer requests addressed to this name, e.g. behind a proxy (repeatable; IP addresses and localhost always work)',
      (name: string, names: string[] = []) => [...names, name],
    )
    .description('a read-only dashboard: models, versions, aliases, audit log, runs and reports')
    .action(lazy(() => import('./ui.js'), 'uiCommand'));
  program
    .command('status')
    .argument('<run>')
    .option('--json', 'print JSON')
    .description('where a run is, or how it ended')
    .action(lazy(runs, 'statusCommand'));
  program
    .command('wait')
    .argument('<run>')
    .option('--json', 'print JSON')
    .description('wait for a run to end; exits like ttd run')
    .action(lazy(runs, 'waitCommand'));
  program
    .command('cancel')
    .argument('<run>')
    .option('--json', 'print JSON')
    .description('cancel a running run')
    .action(lazy(runs, 'cancelCommand'));
  program
    .command('runs')
    .option('--model <name>', 'only runs of this model (search attribute TtdModel)')
    .option('--outcome <outcome>', 'only runs that ended so: promoted, rejected, failed, cancelled; or running')
    .option('--since <when>', 'only runs started since: a time ago (24h, 7d) or a date (2026-12-01)')
    .option('--commit <sha>', 'only runs of this commit (a prefix finds the full SHA)')
    .option('--limit <n>', 'at most this many', '50')
    .option('--query', 'print the visibility query instead (for temporal workflow list --query and the Temporal UI)')
    .option('--json', 'print JSON')
    .description('recent runs, newest first, found by their search attributes')
    .action(lazy(runs, 'runsCommand'));
  program
    .command('approve')
    .argument('<run>')
    .option('--by <name>', 'who approves (recorded in the audit trail)')
    .option('--reject', 'reject instead of approving')
    .option('--reason <text>', 'why')
    .option('--json', 'print JSON')
    .description('answer a run waiting for approval')
    .action(lazy(runs, 'approveCommand'));

  program
    .command('show')
    .argument('<ref>', ref)
    .option('--json', 'print JSON')
    .description('show a version: digest, aliases, gates and stage reports')
    .action(lazy(registry, 'showCommand'));
  program
    .command('pull')
    .argument('<ref>', ref)
    .requiredOption('-o, --output <file>', 'where to write the artifact (with --signature: a new or empty directory)')
    .option(
      '--format <format>',
      'torchscript (an archive), aoti (an AOTInductor package, .pt2) or onnx (an ONNX model, .onnx) (default: "torchscript")',
    )
    .option('--signature', 'pull every format and the OpenSSF model signature (model.sig) into the directory -o names')
    .option('--public-key <file>', 'the model signing public key to check the signature with (default: the one in TTD_KEYS)')
    .option('--force', 'overwrite FILE if it exists')
    .option('--json', 'print JSON')
    .description('write a version’s artifact in one of its formats after checking its digest')
    .action((ref: string, opts: { signature?: boolean }) =>
      opts.signature ? lazy(provenance, 'pullSignedCommand')(ref, opts) : lazy(registry, 'pullCommand')(ref, opts),
    );
  program
    .command('provenance')
    .argument('<ref>', ref)
    .option('-o, --output <file>', 'write it to FILE instead of standard output')
    .option('--statement', 'print the signed in-toto statement instead of its DSSE envelope')
    .option('--public-key <file>', 'the model signing public key to check it with (default: the one in TTD_KEYS)')
    .option('--force', 'overwrite FILE if it exists')
    .option('--json', 'print JSON')
    .description('a version’s SLSA provenance: an in-toto statement in a DSSE envelope signed by the workers’ key')
    .action(lazy(provenance, 'provenanceCommand'));
  program
    .command('signing-key')
    .option('--rotate', 'replace the key by a new one; the old public key is kept in TTD_KEYS/retired-signing/')
    .option('--json', 'print JSON')
    .description('the public key that verifies versions’ model signatures and provenance (PEM)')
    .action(lazy(provenance, 'signingKeyCommand'));
  program
    .command('card')
    .argument('<ref>', ref)
    .option('--json', 'print the card as JSON (docs/model-card.md names its fields)')
    .option('-o, --output <file>', 'write the card (Markdown, or JSON with --json) to FILE instead of stdout')
    .option('--force', 'overwrite FILE if it exists')
    .description('a version’s model card: what it is, its data, parameters, metrics, every gate with its evidence, parity, approvals')
    .action(lazy(() => import('./card-commands.js'), 'cardCommand'));
  program.command('models').option('--json', 'print JSON').description('list registered models').action(lazy(registry, 'modelsCommand'));
  program
    .command('promote')
    .argument('<ref>', 'MODEL:VERSION')
    .requiredOption('--alias <alias>', 'the alias to move')
    .option('--json', 'print JSON')
    .description('point an alias at a version whose gates all passed')
    .action(lazy(registry, 'promoteCommand'));
  program
    .command('rollback')
    .argument('<model>')
    .requiredOption('--alias <alias>', 'the alias to move back')
    .option('--json', 'print JSON')
    .description('move an alias back to the version it held before')
    .action(lazy(registry, 'rollbackCommand'));
  const audit = program.command('audit').description('the audit trail');
  audit
    .command('verify')
    .argument('[model]', 'one model (default: all)')
    .option('--public-key <file>', "the workers' ed25519 public key (default: the one in TTD_KEYS)")
    .option('--anchors <dir>', "the workers' chain anchors (default: TTD_KEYS/anchors)")
    .option('--retired-keys <dir>', 'the statements of retired signing keys (default: TTD_KEYS/retired)')
    .option('--require-signed', 'count an unsigned record as a problem')
    .option('--signing-key <file>', "the model signing public key that checks versions' signatures and provenance (default: TTD_KEYS')")
    .option('--json', 'print JSON')
    .description(
      'recompute every hash chain, check signatures, anchors, every blob, the registry and each version’s model signature and provenance; exit 1 names the first problem',
    )
    .action(lazy(registry, 'auditVerifyCommand'));
  audit
    .command('rotate-key')
    .option('--json', 'print JSON')
    .description('sign new audit records with a new key; records the old key signed still verify, and it signs nothing new')
    .action(lazy(registry, 'auditRotateKeyCommand'));
  audit
    .command('log')
    .argument('<model>')
    .option('--json', 'print JSON')
    .description('every alias move, approval, rejection and rollback')
    .action(lazy(registry, 'auditLogCommand'));

  const env = program.command('env').description('torch environments');
  env
    .command('list')
    .option('--json', 'print JSON')
    .description('the torch environments of this checkout and which are installed')
    .action(lazy(() => import('./env-commands.js'), 'envListCommand'));

  const server = program.command('server').description('the embedded Temporal dev server as a background process');
  server
    .command('start')
    .option('--json', 'print JSON')
    .description('start it (SQLite under $TTD_HOME); returns once it answers')
    .action(lazy(servers, 'serverStartCommand'));
  server.command('stop').option('--json', 'print JSON').description('stop it').action(lazy(servers, 'serverStopCommand'));
  server.command('status').option('--json', 'print JSON').description('is it running').action(lazy(servers, 'serverStatusCommand'));
  program
    .command('worker')
    .option('--queue <queue>', 'control or torch (default: both)')
    .option('--metrics-port <n>', 'serve Prometheus metrics on this port at /metrics (default: TTD_METRICS_PORT; none)')
    .option('--metrics-host <host>', 'the address the metrics port binds (default: TTD_METRICS_HOST, else 127.0.0.1)')
    .option('--otel', 'trace workflows and activities with OpenTelemetry to OTEL_EXPORTER_OTLP_ENDPOINT (default: TTD_OTEL)')
    .option('--env <name>', "serve only this torch environment's pool (default: every installed one; ttd env list)")
    .option('--device <device>', 'the pool device: cpu (default) or cuda')
    .option('--concurrency <n>', 'torch activities at once (default: 1 per core; TTD_WORKER_CONCURRENCY)')
    .description("serve this store's task queues until SIGINT or SIGTERM")
    .action(lazy(servers, 'workerCommand'));

  const schedule = program.command('schedule').description('scheduled retraining (Temporal Schedules)');
  schedule
    .command('create')
    .argument('<id>')
    .argument('<spec>')
    .option('--cron <expr>', 'cron expression')
    .option('--every <duration>', 'interval, e.g. 1h or 30m')
    .option('--overlap <policy>', 'skip, buffer-one, buffer-all, cancel-other or allow-all', 'skip')
    .option('--json', 'print JSON')
    .description('retrain SPEC on a schedule')
    .action(lazy(schedules, 'scheduleCreateCommand'));
  schedule.command('list').option('--json', 'print JSON').description('all schedules').action(lazy(schedules, 'scheduleListCommand'));
  schedule
    .command('describe')
    .argument('<id>')
    .option('--json', 'print JSON')
    .description('one schedule')
    .action(lazy(schedules, 'scheduleDescribeCommand'));
  for (const action of ['pause', 'unpause', 'trigger', 'delete'] as const) {
    schedule
      .command(action)
      .argument('<id>')
      .option('--json', 'print JSON')
      .option('--note <text>', 'why')
      .description(`${action} a schedule`)
      .action(async (...args: unknown[]) => {
        const { scheduleActionCommand } = await schedules();
        await (scheduleActionCommand(action) as (...a: unknown[]) => unknown)(...args);
      });
  }
  schedule
    .command('backfill')
    .argument('<id>')
    .requiredOption('--start <iso>', 'from')
    .requiredOption('--end <iso>', 'to')
    .option('--overlap <policy>', 'overlap policy for the backfilled runs', 'allow-all')
    .option('--json', 'print JSON')
    .description('run the schedule for past times')
    .action(lazy(schedules, 'scheduleBackfillCommand'));

  await program.parseAsync(process.argv);
}

main().catch((err) => failWith(err, JSON_WANTED));
