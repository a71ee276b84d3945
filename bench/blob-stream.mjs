// Benchmark (not a test): one large blob stored as a torch stage stores its outputs (storeWorkFile) and read back as
// it materializes its inputs (materialize), through the fs store and S3 (moto on loopback), each operation in a Node process of its own (test/blob-io.cjs) so that its peak RSS is
// the operation's; this checkout against a baseline checkout (main before blobs streamed), interleaved, in one run.
// Usage: node bench/blob-stream.mjs [SIZE_MIB] [RUNS] [BASELINE_CHECKOUT]   (default 1024 MiB, 3 runs, no baseline)
// The baseline needs its dist/ built (make setup there). moto is started afresh for every operation pair, so the
// blobs it holds in memory never add up; its own memory is not counted.
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { median, root, sh, startMoto } from './common.mjs';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 1024);
const runs = Number(process.argv[3] ?? 3);
const baseline = process.argv[4];
const checkouts = baseline ? { before: baseline, after: root } : { after: root };
const scratch = mkdtempSync(join(tmpdir(), 'ttd-bench-blob-'));

// One operation of one checkout's store, in a fresh process. The baseline's SDK checks a response's CRC, which fails
// on moto's multipart objects; AWS_RESPONSE_CHECKSUM_VALIDATION=when_required (the SDK's own switch) lets it read them.
function blobIo(checkout, store, env, ...args) {
  const r = sh(process.execPath, [join(root, 'test', 'blob-io.cjs'), checkout, store, ...args], {
    env: { ...process.env, ...env, AWS_RESPONSE_CHECKSUM_VALIDATION: 'when_required' },
  });
  const out = JSON.parse(r.stdout);
  if (out.error) throw new Error(`${checkout} ${args[0]} on ${store}: ${out.error.message}`);
  return out;
}

async function main() {
  const file = join(scratch, 'weights.bin');
  await pipeline(
    (function* () {
      for (let i = 0; i < sizeMiB; i++) yield randomBytes(MiB);
    })(),
    createWriteStream(file),
  );
  // results[backend][checkout][op] = [{ ms, rss }]
  const results = {};
  const record = (backend, name, op, out) => {
    ((results[backend] ??= {})[name] ??= {})[op] ??= [];
    results[backend][name][op].push({ ms: out.ms, rss: out.maxRssBytes });
  };
  for (let run = 0; run < runs; run++) {
    for (const backend of ['fs', 's3']) {
      // Interleaved, and the order flipped every run, so neither side always goes first on a warm page cache.
      const order = Object.entries(checkouts);
      if (run % 2) order.reverse();
      for (const [name, checkout] of order) {
        const moto = backend === 's3' ? await startMoto() : undefined;
        const store = backend === 's3' ? `s3://models/${name}-${run}` : join(scratch, `store-${name}-${run}`);
        const env = moto?.env ?? {};
        record(backend, name, 'idle', blobIo(checkout, store, env, 'idle'));
        const put = blobIo(checkout, store, env, 'store', file);
        record(backend, name, 'store', put);
        record(backend, name, 'materialize', blobIo(checkout, store, env, 'materialize', put.digest, join(scratch, `out-${name}`)));
        rmSync(join(scratch, `out-${name}`), { recursive: true, force: true });
        if (backend === 'fs') rmSync(store, { recursive: true, force: true });
        await moto?.stop();
        process.stderr.write(
          `run ${run + 1}/${runs} ${backend} ${name}: store ${put.ms} ms, materialize ${results[backend][name].materialize.at(-1).ms} ms\n`,
        );
      }
    }
  }
  rmSync(scratch, { recursive: true, force: true });

  const mib = (bytes) => `${Math.round(bytes / MiB)} MiB`;
  const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
  const med = (xs, k) => median(xs.map((x) => x[k]));
  console.log(
    `\n${sizeMiB} MiB blob, median of ${runs}; ${cpus().length} × ${cpus()[0].model}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}\n`,
  );
  const names = Object.keys(checkouts);
  const header = names.flatMap((n) => [`${n}: time`, `${n}: peak RSS`]);
  console.log(`| store, operation | ${header.join(' | ')} |${baseline ? ' time after/before | peak RSS after/before |' : ''}`);
  console.log(`|---|${header.map(() => '---').join('|')}|${baseline ? '---|---|' : ''}`);
  for (const backend of ['fs', 's3']) {
    for (const op of ['idle', 'store', 'materialize']) {
      const cells = names.flatMap((n) => [
        op === 'idle' ? '—' : s(med(results[backend][n][op], 'ms')),
        mib(med(results[backend][n][op], 'rss')),
      ]);
      const ratio = (k) => (med(results[backend].after[op], k) / med(results[backend].before[op], k)).toFixed(2);
      const label = `${backend === 'fs' ? 'fs' : 'S3 (moto)'}, ${op === 'idle' ? 'process that loads the store and does nothing' : op}`;
      console.log(
        `| ${label} | ${cells.join(' | ')} |${baseline ? ` ${op === 'idle' ? '—' : `**${ratio('ms')}×**`} | **${ratio('rss')}×** |` : ''}`,
      );
    }
  }
}

main().catch((err) => {
  console.error(err);
  rmSync(scratch, { recursive: true, force: true });
  process.exit(1);
});
