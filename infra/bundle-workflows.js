// Bundles the compiled workflows once at build time, so each `ttd run` and `ttd worker` skips webpack (~1 s).
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { bundleWorkflowCode } = require('@temporalio/worker');

const root = join(__dirname, '..');
bundleWorkflowCode({ workflowsPath: join(root, 'dist', 'workflows', 'index.js'), logger: { log() {}, info() {}, warn: console.warn, error: console.error, debug() {}, trace() {} } })
  .then(({ code }) => writeFileSync(join(root, 'dist', 'workflow-bundle.js'), code))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
