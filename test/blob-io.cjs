// One blob operation in a process of its own, so that its peak RSS is the operation's: the large-blob test and
// bench/blob-stream.mjs run it. Uses the built store of the checkout at ROOT (dist/), so a bench can compare two.
//   node test/blob-io.cjs ROOT STORE put FILE          STORE: a directory (the fs store) or s3://bucket/prefix
//   node test/blob-io.cjs ROOT STORE get DIGEST DEST    S3 from the AWS_* environment, as ttd reads it
//   node test/blob-io.cjs ROOT STORE idle               loads the same modules and does nothing: the floor
// Prints one JSON line: { op, ms, maxRssBytes, digest?, size?, error?: { code, message } }.
const { join } = require('node:path');

async function main() {
  const [root, where, op, ...args] = process.argv.slice(2);
  const blobs = require(join(root, 'dist', 'lib', 'store'));
  const s3 = /^s3:\/\/([^/]+)\/?(.*)$/.exec(where);
  const store = s3
    ? new (require(join(root, 'dist', 'lib', 's3-store')).S3ObjectStore)(s3[1], s3[2])
    : new (require(join(root, 'dist', 'lib', 'fs-store')).FsObjectStore)(where);
  const started = performance.now();
  const out = { op };
  try {
    if (op === 'put') out.digest = await blobs.putBlobFile(store, args[0]);
    else if (op === 'get') out.size = await blobs.getBlobToFile(store, args[0], args[1]);
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
