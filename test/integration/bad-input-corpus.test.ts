// The bad-input corpus (issue 15): specs, spec files, CLI arguments and environment variables a user gets wrong,
// each through the real bin/ttd on the suite's Temporal server. Every case asserts the exit code (2), exactly one JSON
// object on stdout with the error code, a message that names the thing and the value, no stack trace, and that nothing
// was left behind: the home stays empty and the spec's folder holds only what the test wrote.
// Store damage, interrupts, concurrency and model files that crash live in their own files (crash, interrupts,
// one-home, bad-input, store-damage tests); this file is the fast, table-driven part.
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { quickSeedSpec, runTtd, tempDir, testEnv } from '../helpers';

interface Case {
  /** What the user got wrong, in words (the test's name). */
  name: string;
  /** The spec, as an object (written as YAML beside a copy of the seed's model file) or as raw file text. */
  spec?: Record<string, unknown> | { raw: string | Buffer; file?: string };
  /** The command line; SPEC and DIR stand for the spec's path and its folder. Default: run SPEC. */
  args?: string[];
  env?: Record<string, string>;
  /** The error code, and fragments the message must hold (the thing and the value). */
  code: string;
  names: Array<string | RegExp>;
  /** Needs the suite's Temporal server (commands that ask it); default: none is configured and none is needed. */
  server?: boolean;
  /** Makes more files in the spec's folder before the command runs (they count as the test's own). */
  setup?: (dir: string) => void;
  /** A command without --json (ttd ui): the code and the message are read from stderr, and stdout stays empty. */
  human?: boolean;
}

const base = (extra: Record<string, unknown> = {}) => quickSeedSpec('corpus', extra);
const train = (patch: Record<string, unknown>) => base({ train: { ...(base().train as object), ...patch } });
const trace = (patch: Record<string, unknown>) => base({ trace: { batch_sizes: [1, 7], ...patch } });
const parity = (patch: Record<string, unknown>) => base({ parity: { runtimes: ['python'], atol: 1e-5, rtol: 1e-4, ...patch } });
const promote = (patch: Record<string, unknown>) => base({ promote: patch });
const without = (key: string) => Object.fromEntries(Object.entries(base()).filter(([k]) => k !== key));

const SPECS: Case[] = [
  { name: 'no name', spec: without('name'), code: 'spec_invalid', names: ['name'] },
  { name: 'a name that is a number', spec: base({ name: 123 }), code: 'spec_invalid', names: ['name must be a string'] },
  {
    name: 'a name with a space',
    spec: base({ name: 'Bad Name' }),
    code: 'spec_invalid',
    names: ['name must match [a-z0-9][a-z0-9._-]{0,63}'],
  },
  { name: "a name with '..'", spec: base({ name: 'a..b' }), code: 'spec_invalid', names: ["name must not contain '..'"] },
  { name: 'a name of 65 characters', spec: base({ name: 'a'.repeat(65) }), code: 'spec_invalid', names: ['name must match'] },
  { name: 'a model that is a number', spec: base({ model: 5 }), code: 'spec_invalid', names: ['model must be a path to a Python file'] },
  { name: 'a model file that does not exist', spec: base({ model: './missing.py' }), code: 'model_file_not_found', names: ['missing.py'] },
  { name: 'a misspelt section', spec: base({ trian: { epochs: 2 } }), code: 'spec_invalid', names: ['trian'] },
  {
    name: 'train.epochs 0',
    spec: train({ epochs: 0 }),
    code: 'spec_invalid',
    names: ['train.epochs must be a positive integer no larger than 10000'],
  },
  { name: 'train.epochs 1e12', spec: train({ epochs: 1e12 }), code: 'spec_invalid', names: ['train.epochs', '10000'] },
  { name: 'train.epochs 2.5', spec: train({ epochs: 2.5 }), code: 'spec_invalid', names: ['train.epochs must be a positive integer'] },
  { name: 'train.epochs as a string', spec: train({ epochs: '10' }), code: 'spec_invalid', names: ['train.epochs'] },
  { name: 'train.epochs negative', spec: train({ epochs: -1 }), code: 'spec_invalid', names: ['train.epochs'] },
  {
    name: 'train.batch_size 0',
    spec: train({ batch_size: 0 }),
    code: 'spec_invalid',
    names: ['train.batch_size must be a positive integer'],
  },
  {
    name: 'an unknown optimizer',
    spec: train({ optimizer: 'rmsprop' }),
    code: 'spec_invalid',
    names: ['train.optimizer must be one of adam, sgd'],
  },
  { name: 'a learning rate of 0', spec: train({ lr: 0 }), code: 'spec_invalid', names: ['train.lr must be a positive number'] },
  { name: 'a negative learning rate', spec: train({ lr: -0.1 }), code: 'spec_invalid', names: ['train.lr'] },
  { name: 'an unknown loss', spec: train({ loss: 'l1' }), code: 'spec_invalid', names: ['train.loss must be one of mse, cross_entropy'] },
  { name: 'a negative seed', spec: train({ seed: -1 }), code: 'spec_invalid', names: ['train.seed must be an integer from 0 to'] },
  { name: 'a seed beyond 2^53', spec: train({ seed: 1e20 }), code: 'spec_invalid', names: ['train.seed'] },
  { name: 'an unknown train field', spec: train({ momentum: 0.9 }), code: 'spec_invalid', names: ['momentum'] },
  {
    name: 'a trace batch of ten million',
    spec: trace({ batch_sizes: [10_000_000] }),
    code: 'spec_invalid',
    names: ['trace.batch_sizes[]', '65536'],
  },
  {
    name: 'a repeated trace batch size',
    spec: trace({ batch_sizes: [1, 1] }),
    code: 'spec_invalid',
    names: ['trace.batch_sizes must list each size once', '1'],
  },
  {
    name: 'trace batch sizes as a string',
    spec: trace({ batch_sizes: '1' }),
    code: 'spec_invalid',
    names: ['trace.batch_sizes must be a list of positive integers'],
  },
  { name: 'a trace batch size of 0', spec: trace({ batch_sizes: [0] }), code: 'spec_invalid', names: ['trace.batch_sizes[]'] },
  { name: 'an unknown trace mode', spec: trace({ mode: 'jit' }), code: 'spec_invalid', names: ['trace.mode must be one of trace, script'] },
  {
    name: 'an unknown target device',
    spec: trace({ target_device: 'tpu' }),
    code: 'spec_invalid',
    names: ['trace.target_device must be cpu, cuda, cuda:N, mps or xpu'],
  },
  {
    name: 'an unknown pool device',
    spec: base({ device: 'gpu' }),
    code: 'spec_invalid',
    names: ['device must be cpu or cuda (got "gpu")'],
  },
  {
    name: 'an unknown optimize method',
    spec: base({ optimize: { method: 'fast' } }),
    code: 'spec_invalid',
    names: ['optimize.method must be one of freeze, optimize_for_inference'],
  },
  {
    name: 'an unknown fusion requirement',
    spec: base({ fusion: { require: 'all' } }),
    code: 'spec_invalid',
    names: ['fusion.require must be one of none, any, pointwise-chains'],
  },
  {
    name: 'an unknown fused_runs choice',
    spec: base({ fusion: { fused_runs: 'sometimes' } }),
    code: 'spec_invalid',
    names: ['fusion.fused_runs must be one of auto, always, never'],
  },
  // This machine's builds (the torch 2.13 CPU wheel, Debian's 1.13) have no LLVM: their CPU servers never fuse.
  {
    name: 'a fusion requirement on a CPU build without LLVM',
    spec: base({ fusion: { require: 'any' } }),
    code: 'fusion_unavailable',
    names: [
      'fusion.require: any',
      /environment 'torch-2\.13' \(torch 2\.13\.0\+cpu, a CPU build without LLVM\) cannot fuse on the CPU/,
      'set fusion.require: none',
    ],
  },
  {
    name: 'a fusion requirement on a CPU build without LLVM, even with fused runs forced',
    spec: base({ fusion: { require: 'pointwise-chains', fused_runs: 'always' } }),
    code: 'fusion_unavailable',
    names: ['fusion.require: pointwise-chains', 'its servers run every fusion group unfused'],
  },
  {
    name: 'a time limit scale below 1',
    spec: base({ time_limits: { scale: 0.5 } }),
    code: 'spec_invalid',
    names: ['time_limits.scale must be a number from 1 to 1000'],
  },
  { name: 'an unknown time limit field', spec: base({ time_limits: { parity: '10m' } }), code: 'spec_invalid', names: ['parity'] },
  {
    name: 'no parity runtime',
    spec: parity({ runtimes: [] }),
    code: 'spec_invalid',
    names: ['parity.runtimes must name at least one runtime'],
  },
  {
    name: 'an unknown parity runtime',
    spec: parity({ runtimes: ['onnx'] }),
    code: 'spec_invalid',
    names: ['parity.runtimes entries must be one of python, libtorch'],
  },
  {
    name: 'a repeated parity runtime',
    spec: parity({ runtimes: ['python', 'python'] }),
    code: 'spec_invalid',
    names: ['parity.runtimes must list each runtime once', 'python'],
  },
  {
    name: 'a parity runtime in an unknown environment',
    spec: parity({ runtimes: ['python@torch-9.9'] }),
    code: 'spec_invalid',
    names: ['torch-9.9'],
  },
  { name: 'atol 1e300', spec: parity({ atol: 1e300 }), code: 'spec_invalid', names: ['parity.atol must be a finite number from 0 to 1'] },
  { name: 'a negative atol', spec: parity({ atol: -1 }), code: 'spec_invalid', names: ['parity.atol'] },
  { name: 'rtol 2', spec: parity({ rtol: 2 }), code: 'spec_invalid', names: ['parity.rtol must be a finite number from 0 to 1'] },
  { name: 'atol as a word', spec: parity({ atol: 'small' }), code: 'spec_invalid', names: ['parity.atol'] },
  { name: 'an alias with capitals', spec: promote({ alias: 'Prod' }), code: 'spec_invalid', names: ['promote.alias must match'] },
  {
    name: 'an unknown approval',
    spec: promote({ approval: 'maybe' }),
    code: 'spec_invalid',
    names: ['promote.approval must be one of none, required'],
  },
  {
    name: 'an approval timeout without approval',
    spec: promote({ approval_timeout: '30m' }),
    code: 'spec_invalid',
    names: ['promote.approval_timeout applies only with promote.approval: required'],
  },
  {
    name: 'an approval timeout of 0s',
    spec: promote({ approval: 'required', approval_timeout: '0s' }),
    code: 'spec_invalid',
    names: ['promote.approval_timeout must be longer than 0'],
  },
  {
    name: 'an approval timeout in words',
    spec: promote({ approval: 'required', approval_timeout: 'soon' }),
    code: 'spec_invalid',
    names: ['promote.approval_timeout must be a duration'],
  },
  {
    name: 'an unknown compare metric',
    spec: promote({ compare: { metric: 'accuracy' } }),
    code: 'spec_invalid',
    names: ['promote.compare.metric must be validation_loss'],
  },
  {
    name: 'a negative min_improvement',
    spec: promote({ compare: { min_improvement: -1 } }),
    code: 'spec_invalid',
    names: ['promote.compare.min_improvement must be a number >= 0'],
  },
  { name: 'no format', spec: base({ formats: [] }), code: 'spec_invalid', names: ['formats must name at least one format'] },
  {
    name: 'an unknown format',
    spec: base({ formats: ['tflite'] }),
    code: 'spec_invalid',
    names: ['formats entries must be one of torchscript, aoti, onnx'],
  },
  {
    name: 'a repeated format',
    spec: base({ formats: ['torchscript', 'torchscript'] }),
    code: 'spec_invalid',
    names: ['formats must list each format once'],
  },
  {
    name: 'an environment name with a space',
    spec: base({ environment: 'Bad Env' }),
    code: 'spec_invalid',
    names: ['environment must be the name of a torch environment'],
  },
  {
    name: 'an environment the checkout lacks',
    spec: base({ environment: 'torch-9.9' }),
    code: 'spec_invalid',
    names: ["'torch-9.9'", 'torch-2.13'],
  },
  {
    name: 'AOTInductor on torch 1.13',
    spec: base({ environment: 'torch-1.13', formats: ['aoti'] }),
    code: 'spec_invalid',
    names: ['aoti', 'torch-1.13'],
  },
  { name: 'params that are a list', spec: base({ params: [1, 2] }), code: 'spec_invalid', names: ['params must be a mapping'] },
  {
    name: 'a params value that is infinite',
    spec: { raw: `${stringify(base())}params:\n  scale: .inf\n` },
    code: 'spec_invalid',
    names: ['params.scale must be JSON data'],
  },
  {
    name: 'both model and artifact',
    spec: base({ artifact: './model.pt', references: './refs.safetensors' }),
    code: 'spec_invalid',
    names: ['set either model', 'or artifact'],
  },
  {
    name: 'an artifact without references',
    spec: { raw: 'name: corpus\nartifact: ./model.pt\n' },
    code: 'spec_invalid',
    names: ['an artifact needs references'],
  },
  {
    name: 'an artifact with aoti',
    spec: { raw: 'name: corpus\nartifact: ./model.pt\nreferences: ./r.safetensors\nformats: [aoti]\n' },
    code: 'spec_invalid',
    names: ['a foreign artifact is a TorchScript archive'],
  },
];

const SPEC_FILES: Case[] = [
  {
    name: 'a spec file that does not exist',
    args: ['run', 'DIR/nope.yaml'],
    code: 'spec_not_found',
    names: ['nope.yaml', 'does not exist'],
  },
  { name: 'a folder as the spec', args: ['run', 'DIR'], code: 'spec_not_found', names: ['is a directory', 'pipeline.yaml'] },
  { name: 'a device as the spec', args: ['run', '/dev/zero'], code: 'spec_not_found', names: ["'/dev/zero' is not a regular file"] },
  { name: 'an empty spec file', spec: { raw: '' }, code: 'spec_invalid', names: ['is empty'] },
  { name: 'a spec of only a comment', spec: { raw: '# nothing here\n' }, code: 'spec_invalid', names: ['is empty'] },
  { name: 'a YAML syntax error', spec: { raw: 'name: corpus\ntrain: [epochs: 1\n' }, code: 'spec_invalid', names: ['pipeline.yaml'] },
  {
    name: 'a JSON syntax error',
    spec: { raw: '{"name": "corpus",', file: 'pipeline.json' },
    code: 'spec_invalid',
    names: ['pipeline.json'],
  },
  { name: 'a spec that is a list', spec: { raw: '- name: corpus\n' }, code: 'spec_invalid', names: ['a spec must be a mapping of fields'] },
  { name: 'a spec that is a number', spec: { raw: '42\n' }, code: 'spec_invalid', names: ['a spec must be a mapping of fields'] },
  { name: 'a spec that is binary', spec: { raw: '\u0000\u0001\u0002\u00ff\u00fe' }, code: 'spec_invalid', names: ['pipeline.yaml'] },
  {
    name: 'a model path that is a folder',
    spec: base({ model: '.' }),
    code: 'model_invalid',
    names: ["model: file '.'", 'is a directory, not a regular file'],
  },
  { name: 'a model path that is a device', spec: base({ model: '/dev/zero' }), code: 'model_invalid', names: ["'/dev/zero'"] },
  { name: 'an empty spec path', args: ['run', ''], code: 'spec_not_found', names: ["spec file '' is an empty path"] },
  {
    name: 'a spec that is a loop of symbolic links',
    args: ['run', 'DIR/loop.yaml'],
    setup: (dir) => {
      symlinkSync(join(dir, 'loop2.yaml'), join(dir, 'loop.yaml'));
      symlinkSync(join(dir, 'loop.yaml'), join(dir, 'loop2.yaml'));
    },
    code: 'spec_not_found',
    names: ['loop.yaml', 'is a loop of symbolic links'],
  },
  {
    name: 'a spec that is not UTF-8 (Latin-1)',
    spec: { raw: Buffer.from('name: caf\xe9\nmodel: ./model.py\n', 'latin1') },
    code: 'spec_invalid',
    names: ['pipeline.yaml', 'is not UTF-8 text'],
  },
  {
    name: 'a spec file of 2 MiB',
    spec: { raw: `name: corpus\n# ${'x'.repeat(2 * 2 ** 20)}\n` },
    code: 'spec_invalid',
    names: ['pipeline.yaml', 'is 2097168 bytes; expected a spec of at most 1048576 bytes'],
  },
  {
    name: 'a model file with the wrong extension',
    spec: base({ model: './pipeline.yaml' }),
    code: 'model_invalid',
    names: ['pipeline.yaml', '.py'],
  },
];

const SPEC = ['SPEC'];
const CLI: Case[] = [
  { name: 'run without a spec', args: ['run'], code: 'argument_invalid', names: ["missing required argument 'spec'"] },
  { name: 'an unknown command', args: ['deploy'], code: 'argument_invalid', names: ["unknown command 'deploy'"] },
  { name: 'an unknown option', args: ['run', ...SPEC, '--fast'], code: 'argument_invalid', names: ["unknown option '--fast'"] },
  { name: 'runs --limit -5', args: ['runs', '--limit', '-5'], code: 'argument_invalid', names: ["--limit '-5'"] },
  { name: 'runs --limit abc', args: ['runs', '--limit', 'abc'], code: 'argument_invalid', names: ["--limit 'abc'"] },
  { name: 'runs --limit 0', args: ['runs', '--limit', '0'], code: 'argument_invalid', names: ["--limit '0'"] },
  {
    name: 'runs --limit without a value',
    args: ['runs', '--json', '--limit'],
    code: 'argument_invalid',
    names: ["option '--limit <n>' argument missing"],
  },
  { name: 'show without a reference', args: ['show'], code: 'argument_invalid', names: ["missing required argument 'ref'"] },
  { name: 'show a model name with capitals', args: ['show', 'Bad@x'], code: 'invalid_name', names: ['"Bad"'] },
  { name: 'show a version that is a word', args: ['show', 'x:abc'], code: 'bad_reference', names: ["'x:abc'", 'MODEL:VERSION'] },
  { name: 'show a model that is not registered', args: ['show', 'nobody'], code: 'model_not_found', names: ["'nobody'"] },
  { name: 'pull without -o', args: ['pull', 'x@y'], code: 'argument_invalid', names: ["'-o, --output <file>'"] },
  { name: 'pull -o a folder', args: ['pull', 'x@y', '-o', 'DIR'], code: 'output_invalid', names: ['is a directory'] },
  { name: 'pull -o an existing file', args: ['pull', 'x@y', '-o', 'SPEC'], code: 'output_exists', names: ['already exists', '--force'] },
  {
    name: 'pull -o under a file',
    args: ['pull', 'x@y', '-o', '/dev/null/model.pt'],
    code: 'output_invalid',
    names: ["'/dev/null' is not a directory"],
  },
  {
    name: 'pull -o into a missing folder',
    args: ['pull', 'x@y', '-o', 'DIR/no/such/model.pt'],
    code: 'output_invalid',
    names: ['does not exist'],
  },
  { name: 'pull -o empty', args: ['pull', 'x@y', '-o', ''], code: 'output_invalid', names: ["-o '' is an empty path"] },
  {
    name: 'pull --signature -o a file',
    args: ['pull', 'x@y', '--signature', '-o', 'SPEC'],
    code: 'output_invalid',
    names: ['is a file', 'expected a new or empty directory'],
  },
  {
    name: 'pull --signature -o a folder with other files',
    args: ['pull', 'x@y', '--signature', '-o', 'DIR'],
    code: 'output_exists',
    names: ['which ttd pull did not write', 'model_signing verify refuses'],
  },
  {
    name: 'pull --signature with --format',
    args: ['pull', 'x@y', '--signature', '--format', 'aoti', '-o', 'DIR/pulled'],
    code: 'argument_invalid',
    names: ['--format aoti', 'the signature covers them all'],
  },
  { name: 'provenance of a model that is not registered', args: ['provenance', 'nobody'], code: 'model_not_found', names: ["'nobody'"] },
  { name: 'provenance -o a folder', args: ['provenance', 'x@y', '-o', 'DIR'], code: 'output_invalid', names: ['is a directory'] },
  {
    name: 'audit verify --signing-key that is not there',
    args: ['audit', 'verify', '--signing-key', 'DIR/none.pub'],
    code: 'signing_key_missing',
    names: ['none.pub'],
  },
  {
    name: 'audit verify --signing-key that is not a key',
    args: ['audit', 'verify', '--signing-key', 'SPEC'],
    code: 'signing_key_invalid',
    names: ['pipeline.yaml', 'not a PEM public key'],
  },
  // A rename replaces a device or a link itself: as root, `-o /dev/null --force` would have replaced /dev/null.
  {
    name: 'pull -o a device, with --force',
    args: ['pull', 'x@y', '-o', '/dev/null', '--force'],
    code: 'output_invalid',
    names: ["-o '/dev/null' is not a regular file", 'even with --force'],
  },
  {
    name: 'pull -o a symbolic link, with --force',
    args: ['pull', 'x@y', '-o', 'DIR/link.pt', '--force'],
    setup: (dir) => symlinkSync(join(dir, 'model.py'), join(dir, 'link.pt')),
    code: 'output_invalid',
    names: ['link.pt', 'is a symbolic link'],
  },
  {
    name: 'pull -o a loop of symbolic links',
    args: ['pull', 'x@y', '-o', 'DIR/loop.pt'],
    setup: (dir) => {
      symlinkSync(join(dir, 'loop2.pt'), join(dir, 'loop.pt'));
      symlinkSync(join(dir, 'loop.pt'), join(dir, 'loop2.pt'));
    },
    code: 'output_invalid',
    names: ['loop.pt', 'ELOOP'],
  },
  {
    name: 'pull --format tflite',
    args: ['pull', 'x@y', '-o', 'DIR/m.pt', '--format', 'tflite'],
    code: 'argument_invalid',
    names: ["'tflite'"],
  },
  { name: 'promote without --alias', args: ['promote', 'x:1'], code: 'argument_invalid', names: ["'--alias <alias>'"] },
  {
    name: 'promote an unknown model',
    args: ['promote', 'nobody:1', '--alias', 'production'],
    code: 'model_not_found',
    names: ["'nobody'"],
  },
  {
    name: 'promote to an alias that escapes its folder',
    args: ['promote', 'nobody:1', '--alias', '../../x'],
    code: 'invalid_name',
    names: ['alias name "../../x" is invalid'],
  },
  {
    name: 'rollback an alias that escapes its folder',
    args: ['rollback', 'nobody', '--alias', '../x'],
    code: 'invalid_name',
    names: ['alias name "../x" is invalid'],
  },
  {
    name: 'rollback an unknown model',
    args: ['rollback', 'nobody', '--alias', 'production'],
    code: 'model_not_found',
    names: ["'nobody'"],
  },
  { name: 'status of an unknown run', args: ['status', 'no-such-run'], code: 'run_not_found', names: ["'no-such-run'"], server: true },
  { name: 'wait for an unknown run', args: ['wait', 'no-such-run'], code: 'run_not_found', names: ["'no-such-run'"], server: true },
  { name: 'cancel an unknown run', args: ['cancel', 'no-such-run'], code: 'run_not_found', names: ["'no-such-run'"], server: true },
  {
    name: 'approve an unknown run',
    args: ['approve', 'no-such-run', '--by', 'alice'],
    code: 'run_not_found',
    names: ["'no-such-run'"],
    server: true,
  },
  {
    name: 'status without a server',
    args: ['status', 'some-run'],
    code: 'server_not_running',
    names: ['127.0.0.1:', "'ttd server start'"],
  },
  {
    name: 'schedule --every banana',
    args: ['schedule', 'create', 'nightly', ...SPEC, '--every', 'banana'],
    code: 'schedule_error',
    names: ["--every 'banana'"],
    server: true,
  },
  {
    name: 'schedule --cron nonsense',
    args: ['schedule', 'create', 'nightly', ...SPEC, '--cron', 'every day'],
    code: 'schedule_error',
    names: ['--cron', "'every day'"],
    server: true,
  },
  {
    name: 'schedule with neither --every nor --cron',
    args: ['schedule', 'create', 'nightly', ...SPEC],
    code: 'schedule_error',
    names: ['--every', '--cron'],
    server: true,
  },
  {
    name: 'run --trigger cron',
    args: ['run', ...SPEC, '--trigger', 'cron'],
    code: 'spec_invalid',
    names: ["--trigger must be one of manual, ci, schedule (got 'cron')"],
  },
  {
    name: 'run --trigger ci without --commit',
    args: ['run', ...SPEC, '--trigger', 'ci'],
    code: 'spec_invalid',
    names: ['--trigger ci needs --commit SHA'],
  },
  {
    name: 'run --commit with spaces',
    args: ['run', ...SPEC, '--commit', 'not a sha'],
    code: 'spec_invalid',
    names: ["--commit must be a commit id such as a git SHA (got 'not a sha')"],
  },
  { name: 'status of an empty run id', args: ['status', ''], code: 'argument_invalid', names: ["run id '' is empty"] },
  { name: 'wait for a run id of spaces', args: ['wait', '  '], code: 'argument_invalid', names: ["run id '  ' is empty"] },
  { name: 'cancel an empty run id', args: ['cancel', ''], code: 'argument_invalid', names: ["run id '' is empty"] },
  {
    name: 'approve an empty run id',
    args: ['approve', '', '--by', 'alice'],
    code: 'argument_invalid',
    names: ["run id '' is empty"],
  },
  {
    name: 'status of a run id past Temporal’s limit',
    args: ['status', 'r'.repeat(1001)],
    code: 'argument_invalid',
    names: ['is 1001 characters long', '1000'],
  },
  {
    name: 'approve --by of 200 characters',
    args: ['approve', 'some-run', '--by', 'a'.repeat(200)],
    code: 'argument_invalid',
    names: ['--by', 'is 200 characters long; expected at most 128'],
  },
  {
    name: 'runs --since a million days ago',
    args: ['runs', '--since', '1000000d'],
    code: 'argument_invalid',
    names: ["--since '1000000d' is before 1970"],
  },
  { name: 'audit verify of an empty model name', args: ['audit', 'verify', ''], code: 'invalid_name', names: ['model name ""'] },
  {
    name: 'audit verify --public-key of a folder',
    args: ['audit', 'verify', '--public-key', 'DIR'],
    code: 'argument_invalid',
    names: ['--public-key', 'is a directory', 'ed25519 public key'],
  },
  {
    name: 'audit verify --public-key of a device',
    args: ['audit', 'verify', '--public-key', '/dev/zero'],
    code: 'argument_invalid',
    names: ["--public-key '/dev/zero' is not a regular file"],
  },
  {
    name: 'audit verify --public-key empty',
    args: ['audit', 'verify', '--public-key', ''],
    code: 'argument_invalid',
    names: ["--public-key '' is an empty path"],
  },
  {
    name: 'audit verify --anchors of a file',
    args: ['audit', 'verify', '--anchors', 'SPEC'],
    code: 'argument_invalid',
    names: ['--anchors', 'is not a directory'],
  },
  {
    name: 'audit verify --retired-keys of a missing folder',
    args: ['audit', 'verify', '--retired-keys', 'DIR/retired'],
    code: 'argument_invalid',
    names: ['--retired-keys', 'does not exist'],
  },
  { name: 'ui --port empty', args: ['ui', '--port', ''], human: true, code: 'port_invalid', names: ["--port ''"] },
  { name: 'ui --host empty', args: ['ui', '--host', ''], human: true, code: 'argument_invalid', names: ["--host '' is not an address"] },
  {
    name: 'ui --host not of this machine',
    args: ['ui', '--host', '192.0.2.1', '--port', '0'],
    human: true,
    code: 'argument_invalid',
    names: ['cannot listen on 192.0.2.1:0', 'EADDRNOTAVAIL'],
  },
  // The suite's Temporal server holds its port: refused before an embedded server (over the home's SQLite) starts.
  { name: 'ui --port in use', args: ['ui', '--port', 'TPORT'], human: true, code: 'port_invalid', names: ['EADDRINUSE'] },
  { name: 'audit verify of a model name with capitals', args: ['audit', 'verify', 'BAD'], code: 'invalid_name', names: ['"BAD"'] },
  { name: 'an unknown env subcommand', args: ['env', 'remove'], code: 'argument_invalid', names: ["'remove'"] },
];

const ENV: Case[] = [
  {
    name: 'TTD_TEMPORAL_PORT=abc',
    args: ['status', 'x'],
    env: { TTD_TEMPORAL_PORT: 'abc' },
    code: 'config_invalid',
    names: ["TTD_TEMPORAL_PORT='abc'"],
  },
  {
    name: 'TTD_TEMPORAL_PORT=70000',
    args: ['status', 'x'],
    env: { TTD_TEMPORAL_PORT: '70000' },
    code: 'config_invalid',
    names: ["TTD_TEMPORAL_PORT='70000'"],
  },
  {
    name: 'TTD_TORCH_PROCESS=maybe',
    env: { TTD_TORCH_PROCESS: 'maybe' },
    code: 'config_invalid',
    names: ["TTD_TORCH_PROCESS='maybe'", 'server, fresh'],
  },
  {
    name: 'TTD_SIGNING_KEY that is not a key (ttd run)',
    env: { TTD_SIGNING_KEY: 'SPEC' },
    code: 'signing_key_invalid',
    names: ['pipeline.yaml', 'not a PEM private key', 'ECDSA private key on P-256'],
  },
  {
    name: 'TTD_SIGNING_KEY that is not a key (ttd signing-key)',
    args: ['signing-key'],
    env: { TTD_SIGNING_KEY: 'SPEC' },
    code: 'signing_key_invalid',
    names: ['pipeline.yaml'],
  },
  { name: 'TTD_TORCH_MAX_RSS_MB=-1', env: { TTD_TORCH_MAX_RSS_MB: '-1' }, code: 'config_invalid', names: ["TTD_TORCH_MAX_RSS_MB='-1'"] },
  { name: 'TTD_STORE=ftp://', env: { TTD_STORE: 'ftp://host/store' }, code: 'store_invalid', names: ["TTD_STORE 'ftp://host/store'"] },
  {
    name: 'TTD_STORE relative',
    env: { TTD_STORE: 'file://relative' },
    code: 'store_invalid',
    names: ["TTD_STORE 'file://relative' is not an absolute path"],
  },
  { name: 'TTD_STORE on procfs', env: { TTD_STORE: 'file:///proc/ttd' }, code: 'store_invalid', names: ['procfs'] },
  { name: 'TTD_STORE under a file', env: { TTD_STORE: 'file:///etc/hostname/store' }, code: 'store_invalid', names: ['lies under a file'] },
  {
    name: 'TTD_STORE with a bucket name S3 refuses',
    env: { TTD_STORE: 's3://Bad_Bucket/x' },
    code: 'store_invalid',
    names: ["TTD_STORE 's3://Bad_Bucket/x'"],
  },
  {
    name: 'TTD_S3_IDLE_TIMEOUT_S=0',
    env: { TTD_STORE: 's3://models/corpus', TTD_S3_IDLE_TIMEOUT_S: '0' },
    code: 'config_invalid',
    names: ["TTD_S3_IDLE_TIMEOUT_S='0'", 'a positive number up to 86400'],
  },
  {
    name: 'TTD_PYTHON that does not exist',
    env: { TTD_PYTHON: '/nonexistent/python3' },
    code: 'python_missing',
    names: ['/nonexistent/python3', 'TTD_PYTHON'],
  },
  // Programs that are not a Python with torch: named with the variable, the value, what they did and what was expected.
  {
    name: 'TTD_PYTHON=/bin/true',
    env: { TTD_PYTHON: '/bin/true' },
    code: 'config_invalid',
    names: [
      "TTD_PYTHON='/bin/true' is not a Python interpreter",
      'exited with status 0 and printed nothing',
      'expected the path of a Python interpreter with torch',
    ],
  },
  {
    name: 'TTD_PYTHON=/bin/echo',
    env: { TTD_PYTHON: '/bin/echo' },
    code: 'config_invalid',
    names: ["TTD_PYTHON='/bin/echo' is not a Python interpreter", 'printed "-c import', 'with torch'],
  },
  {
    name: 'TTD_PYTHON=/bin/false',
    env: { TTD_PYTHON: '/bin/false' },
    code: 'config_invalid',
    names: ["TTD_PYTHON='/bin/false' is not a Python interpreter", 'exited with status 1'],
  },
  {
    name: 'TTD_PYTHON a shell',
    env: { TTD_PYTHON: '/bin/sh' },
    code: 'config_invalid',
    names: ["TTD_PYTHON='/bin/sh' is not a Python interpreter", 'exited with status 2', 'on stderr'],
  },
  {
    name: 'TTD_PYTHON a file that is not executable',
    env: { TTD_PYTHON: '/etc/passwd' },
    code: 'config_invalid',
    names: ["TTD_PYTHON='/etc/passwd' is not executable (mode 0644)", 'with torch'],
  },
  {
    name: 'TTD_PYTHON a directory',
    env: { TTD_PYTHON: '/usr/bin' },
    code: 'config_invalid',
    names: ["TTD_PYTHON='/usr/bin' is a directory", 'with torch'],
  },
  {
    name: 'a Temporal binary that does not exist',
    env: { TTD_TEMPORAL_BIN: '/nonexistent/temporal', TTD_TEMPORAL_PORT: '1' },
    code: 'temporal_missing',
    names: ['/nonexistent/temporal', 'TTD_TEMPORAL_BIN'],
  },
  // HTTPPORT: a plain HTTP server (not Temporal) this file starts; named as such, at once rather than after the deadline.
  {
    name: 'TTD_TEMPORAL_PORT of an HTTP server, not Temporal',
    args: ['status', 'some-run'],
    env: { TTD_TEMPORAL_PORT: 'HTTPPORT' },
    code: 'server_unreachable',
    names: [/the server at 127\.0\.0\.1:\d+ answers, but not as Temporal/, 'TTD_TEMPORAL_PORT'],
  },
  {
    name: 'server status with an HTTP server on the port',
    args: ['server', 'status'],
    env: { TTD_TEMPORAL_PORT: 'HTTPPORT' },
    code: 'server_unreachable',
    names: ['answers, but not as Temporal'],
  },
  {
    name: 'TEMPORAL_ADDRESS of an HTTP server',
    args: ['runs'],
    env: { TEMPORAL_ADDRESS: '127.0.0.1:HTTPPORT' },
    code: 'server_unreachable',
    names: ['answers, but not as Temporal', 'TEMPORAL_ADDRESS'],
  },
  { name: 'TTD_HOME empty', env: { TTD_HOME: '' }, code: 'config_invalid', names: ['TTD_HOME="" is empty'] },
  {
    name: 'TTD_HOME of a file, server start',
    args: ['server', 'start'],
    env: { TTD_HOME: 'SPEC' },
    code: 'config_invalid',
    names: ['TTD_HOME=', 'pipeline.yaml', 'is a file, not a directory'],
  },
  {
    name: 'TTD_HOME under a file',
    args: ['models'],
    env: { TTD_HOME: 'SPEC/home' },
    code: 'config_invalid',
    names: ['pipeline.yaml', 'which is a file, not a directory'],
  },
  {
    name: 'TTD_ACTOR with a newline',
    args: ['promote', 'nobody:1', '--alias', 'production'],
    env: { TTD_ACTOR: 'eve\nroot' },
    code: 'config_invalid',
    names: ['TTD_ACTOR'],
  },
];

/** Runs one case in a fresh home and spec folder, and checks everything the corpus promises. */
async function check(c: Case): Promise<void> {
  const home = tempDir('ttd-corpus-home-');
  const dir = tempDir('ttd-corpus-spec-');
  writeFileSync(join(dir, 'model.py'), '# a stand-in: these runs never get as far as reading it\n');
  const specName = c.spec && 'raw' in c.spec ? String(c.spec.file ?? 'pipeline.yaml') : 'pipeline.yaml';
  const spec = join(dir, specName);
  if (c.spec && 'raw' in c.spec) writeFileSync(spec, c.spec.raw as string | Buffer);
  else writeFileSync(spec, stringify({ ...(c.spec ?? base()), ...(c.spec && 'model' in c.spec ? {} : { model: './model.py' }) }));
  mkdirSync(join(dir, 'sub'));
  c.setup?.(dir);
  const before = readdirSync(dir).sort();
  const temporalPort = inject('temporalAddress').split(':').pop() as string;
  const args = (c.args ?? ['run', 'SPEC']).map((a) => a.replace('SPEC', spec).replace('DIR', dir).replace('TPORT', temporalPort));
  const env: Record<string, string | undefined> = {
    ...testEnv(home, c.server ? inject('temporalAddress') : undefined),
    TTD_TEMPORAL_PORT: '1',
  };
  for (const [k, v] of Object.entries(c.env ?? {})) env[k] = v.replace('HTTPPORT', String(httpPort)).replace('SPEC', spec);
  const run = await runTtd(c.human || args.includes('--json') ? args : [...args, '--json'], env);

  expect(run.code, run.stderr).toBe(2);
  let message: string;
  if (c.human) {
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`[${c.code}]`);
    message = run.stderr;
  } else {
    const out = JSON.parse(run.stdout); // exactly one JSON object: anything else on stdout fails to parse
    expect(out.status).toBe('failed');
    expect(out.error.code, out.error.message).toBe(c.code);
    message = out.error.message;
  }
  for (const fragment of c.names) {
    if (typeof fragment === 'string') expect(message).toContain(fragment);
    else expect(message).toMatch(fragment);
  }
  expect(run.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/); // no stack trace
  expect(readdirSync(home)).toEqual([]);
  expect(readdirSync(dir).sort()).toEqual(before);
}

/** The port of a plain HTTP server: what a user's TTD_TEMPORAL_PORT or TEMPORAL_ADDRESS may point at by mistake. */
let httpPort = 0;
let http: Server;

describe('bad-input corpus', () => {
  beforeAll(async () => {
    http = createServer((_req, res) => res.end('not temporal\n'));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    httpPort = (http.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => http.close(() => resolve())));
  const all = [...SPECS, ...SPEC_FILES, ...CLI, ...ENV];
  it('holds at least 100 cases', () => expect(all.length).toBeGreaterThanOrEqual(100));
  describe.concurrent.each([
    ['spec', SPECS],
    ['spec file', SPEC_FILES],
    ['cli', CLI],
    ['environment', ENV],
  ] as const)('%s', (_, cases) => {
    // 180 s: a case that probes torch (the fusion preflight) took past 60 s beside other files at load average 25.
    it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => check(c), 180_000);
  });
});
