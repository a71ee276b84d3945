// Bundles the compiled workflows once at build time, so each `ttd run` and `ttd worker` skips webpack (~1 s): the plain
// bundle, and one with OpenTelemetry's workflow interceptors for workers that trace (TTD_OTEL=1, `ttd worker --otel`).
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { bundleWorkflowCode } = require('@temporalio/worker');

const root = join(__dirname, '..');
const logger = { log() {}, info() {}, warn: console.warn, error: console.error, debug() {}, trace() {} };
const workflowsPath = join(root, 'dist', 'workflows', 'index.js');
const otel = require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

async function main() {
  for (const [file, workflowInterceptorModules] of [
    ['workflow-bundle.js', []],
    ['workflow-bundle-otel.js', [otel]],
  ]) {
    const { code } = await bundleWorkflowCode({ workflowsPath, workflowInterceptorModules, logger });
    writeFileSync(join(root, 'dist', file), code);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
