// Prints the suite's closing line, 'N passed, N failed', from vitest's JSON report and the Python unittest logs (one
// per torch environment).
import { readFileSync } from 'node:fs';

const [vitestJson, ...pythonLogs] = process.argv.slice(2);
const v = JSON.parse(readFileSync(vitestJson, 'utf8'));
let passed = v.numPassedTests;
let failed = v.numFailedTests;
for (const log of pythonLogs) {
  const py = readFileSync(log, 'utf8');
  const ran = Number(/Ran (\d+) tests?/.exec(py)?.[1] ?? 0);
  const pyFailed = Number(/failures=(\d+)/.exec(py)?.[1] ?? 0) + Number(/errors=(\d+)/.exec(py)?.[1] ?? 0);
  passed += ran - pyFailed;
  failed += pyFailed;
}
console.log(`Tests: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 || v.success === false ? 1 : 0);
