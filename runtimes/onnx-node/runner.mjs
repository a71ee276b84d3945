// ttd parity runner (ONNX Runtime, Node): load an ONNX model, run the reference inputs, write the outputs.
// Standalone by design: Node and onnxruntime-node from this folder's node_modules, nothing of ttd. Run with the work
// directory as cwd: node runner.mjs --model M.onnx --references R.safetensors --out O.safetensors [--threads N]
// [--graph-optimization disabled|all]. One JSON line on stdout: the summary, or {"error": {"stage", "message"}}.
// See docs/protocol.md, section 2.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';

const require = (await import('node:module')).createRequire(import.meta.url);
const ORT_VERSION = require('onnxruntime-node/package.json').version;

// safetensors dtype -> [ONNX Runtime tensor type, typed array, bytes per element].
const DTYPES = {
  F64: ['float64', Float64Array, 8],
  F32: ['float32', Float32Array, 4],
  F16: ['float16', Uint16Array, 2],
  I64: ['int64', BigInt64Array, 8],
  I32: ['int32', Int32Array, 4],
  I16: ['int16', Int16Array, 2],
  I8: ['int8', Int8Array, 1],
  U8: ['uint8', Uint8Array, 1],
  BOOL: ['bool', Uint8Array, 1],
};
const NAMES = Object.fromEntries(Object.entries(DTYPES).map(([name, [type]]) => [type, name]));
const MAX_HEADER_BYTES = 100_000_000;

/** A failure at a named stage: args, load, read, run or write. */
class Failure extends Error {
  constructor(stage, message) {
    super(message);
    this.stage = stage;
  }
}

async function stage(name, fn) {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Failure) throw err;
    process.stderr.write(`${err?.stack ?? err}\n`);
    throw new Failure(
      name,
      `${err?.name ?? 'Error'}: ${String(err?.message ?? err)
        .replace(/\s+/g, ' ')
        .slice(0, 500)}`,
    );
  }
}

/** The cases of a references file, `[[case, [tensor...]]]` in the order its metadata lists, inputs only. */
function readCases(path) {
  const raw = readFileSync(path);
  const fail = (message) => {
    throw new Error(`${path}: ${message}`);
  };
  if (raw.length < 8) fail(`file is ${raw.length} bytes; expected at least 8 (the header length)`);
  const size = raw.readBigUInt64LE(0);
  if (size > BigInt(MAX_HEADER_BYTES)) fail(`header length ${size} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  if (8n + size > BigInt(raw.length)) fail(`header length ${size} runs past the end of the file`);
  const start = 8 + Number(size);
  let header;
  try {
    header = JSON.parse(raw.subarray(8, start).toString('utf8'));
  } catch (err) {
    fail(`header is not valid JSON: ${err.message}`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) fail('header must be a JSON object');
  const tensors = new Map();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__' || !name.includes('/input/')) continue;
    const { dtype, shape, data_offsets: offsets } = entry ?? {};
    if (!(dtype in DTYPES)) fail(`tensor '${name}' is ${dtype}; this runner reads ${Object.keys(DTYPES).join(', ')}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(`tensor '${name}' has shape ${JSON.stringify(shape)}`);
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    )
      fail(`tensor '${name}' has data_offsets ${JSON.stringify(offsets)}`);
    const [type, Typed, width] = DTYPES[dtype];
    const count = shape.reduce((a, b) => a * b, 1);
    if (offsets[1] - offsets[0] !== count * width)
      fail(`tensor '${name}' spans ${offsets[1] - offsets[0]} bytes; ${dtype} ${JSON.stringify(shape)} needs ${count * width}`);
    if (start + offsets[1] > raw.length) fail(`tensor '${name}' runs past the end of the file`);
    // A copy: typed arrays need their element alignment, which a file offset does not promise.
    const bytes = Uint8Array.prototype.slice.call(raw, start + offsets[0], start + offsets[1]);
    tensors.set(name, new ort.Tensor(type, new Typed(bytes.buffer, 0, count), shape));
  }
  const listed = header.__metadata__?.cases;
  const cases = [];
  for (const name of (typeof listed === 'string' ? listed : '').split(',').filter(Boolean)) {
    const inputs = [];
    while (tensors.has(`${name}/input/${inputs.length}`)) inputs.push(tensors.get(`${name}/input/${inputs.length}`));
    cases.push([name, inputs]);
  }
  return cases;
}

async function runCases(session, cases) {
  const names = session.inputNames;
  const outputs = [];
  for (const [name, inputs] of cases) {
    if (inputs.length !== names.length)
      throw new Error(`case '${name}' has ${inputs.length} inputs; the ONNX model takes ${names.length} (${names.join(', ')})`);
    const result = await session.run(Object.fromEntries(names.map((n, i) => [n, inputs[i]])));
    session.outputNames.forEach((out, j) => outputs.push([`${name}/output/${j}`, result[out]]));
  }
  return outputs;
}

function writeSafetensors(path, outputs, metadata) {
  const header = { __metadata__: metadata };
  const blobs = [];
  let offset = 0;
  for (const [name, tensor] of outputs) {
    const dtype = NAMES[tensor.type];
    if (!dtype) throw new Error(`output '${name}' is ${tensor.type}; safetensors here holds ${Object.keys(NAMES).join(', ')}`);
    const data = tensor.data;
    const blob = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    header[name] = { dtype, shape: [...tensor.dims], data_offsets: [offset, offset + blob.length] };
    blobs.push(blob);
    offset += blob.length;
  }
  let encoded = Buffer.from(JSON.stringify(header), 'utf8');
  encoded = Buffer.concat([encoded, Buffer.alloc((8 - (encoded.length % 8)) % 8, 0x20)]);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(encoded.length));
  writeFileSync(path, Buffer.concat([length, encoded, ...blobs]));
}

async function main() {
  let opts;
  try {
    ({ values: opts } = parseArgs({
      options: {
        model: { type: 'string' },
        references: { type: 'string' },
        out: { type: 'string' },
        threads: { type: 'string', default: '1' },
        'graph-optimization': { type: 'string', default: 'all' },
        format: { type: 'string', default: 'onnx' },
      },
    }));
    for (const required of ['model', 'references', 'out']) if (!opts[required]) throw new Error(`--${required} is required`);
    if (!['disabled', 'all'].includes(opts['graph-optimization']))
      throw new Error(`--graph-optimization must be disabled or all (got '${opts['graph-optimization']}')`);
    if (opts.format !== 'onnx') throw new Error(`--format must be onnx (got '${opts.format}')`);
    if (!/^[1-9][0-9]*$/.test(opts.threads)) throw new Error(`--threads must be a positive integer (got '${opts.threads}')`);
  } catch (err) {
    process.stderr.write(`ttd onnx-node runner: ${err.message}\n`);
    console.log(JSON.stringify({ error: { stage: 'args', message: err.message } }));
    return 2;
  }
  const threads = Number(opts.threads);
  const level = opts['graph-optimization'];
  try {
    const session = await stage('load', () =>
      ort.InferenceSession.create(opts.model, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: level,
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
      }),
    );
    const cases = await stage('read', () => readCases(opts.references));
    const outputs = await stage('run', () => runCases(session, cases));
    await stage('write', () =>
      writeSafetensors(opts.out, outputs, { format: 'ttd-outputs/1', cases: cases.map(([name]) => name).join(',') }),
    );
    console.log(
      JSON.stringify({
        runtime: 'onnxruntime-node',
        format: 'onnx',
        onnxruntime_version: ORT_VERSION,
        execution_provider: 'CPUExecutionProvider',
        graph_optimization: level,
        threads,
        cases: cases.length,
      }),
    );
    return 0;
  } catch (err) {
    console.log(JSON.stringify({ error: { stage: err.stage ?? 'run', message: err.message } }));
    return 1;
  }
}

process.exitCode = await main();
