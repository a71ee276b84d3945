// One blob operation in a process of its own, so that its peak RSS is the operation's: the large-blob test and
// bench/blob-stream.mjs run it. Uses the built code of the checkout at ROOT (dist/), so a bench can compare two.
//   node test/blob-io.cjs ROOT STORE store FILE           what a torch stage does with a file it wrote (storeWorkFile)
//   node test/blob-io.cjs ROOT STORE materialize DIGEST DIR   what a stage does with its inputs: DIR/blob (materialize)
//   node test/blob-io.cjs ROOT STORE idle                 loads the same modules and does nothing: the floor
// STORE: a directory (the fs store) or s3://bucket/prefix, with S3 from the AWS_* environment as ttd reads it.
// Prints one JSON line: { op, ms, maxRssBytes, digest?, size?, error?: { code, message } }.
const { statSync } = require('node:fs');
const { dirname, join } = require('node:path');

async function main() {
  const [root, where, op, ...args] = process.argv.slice(2);
  const stage = require(join(root, 'dist', 'activities', 'torch-stage'));
  const s3 = /^s3:\/\/([^/]+)\/?(.*)$/.exec(where);
  const store = s3
    ? new (require(join(root, 'dist', 'lib', 'store', 's3-store')).S3ObjectStore)(s3[1], s3[2])
    : new (require(join(root, 'dist', 'lib', 'store', 'fs-store')).FsObjectStore)(where);
  const started = performance.now();
  const out = { op };
  try {
    if (op === 'store') out.digest = await stage.storeWorkFile(store, dirname(args[0]), args[0]);
    else if (op === 'materialize') out.size = statSync((await stage.materialize(store, args[1], { blob: args[0] })).blob).size;
    else if (op !== 'idle') throw new Error(`unknown op '${op}'`);
  } catch (err) {
    out.error = { code: err.code, message: err.message };
  }
  out.ms = Math.round(performance.now() - started);
  out.maxRssBytes = process.resourceUsage().maxRSS * 1024; // Node reports kilobytes
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
