// Prints the suite's closing line, 'N passed, N failed', from vitest's JSON report and the Python unittest count.
import { readFileSync } from 'node:fs';

const [vitestJson, pythonLog] = process.argv.slice(2);
const v = JSON.parse(readFileSync(vitestJson, 'utf8'));
const py = readFileSync(pythonLog, 'utf8');
const ran = Number(/Ran (\d+) tests?/.exec(py)?.[1] ?? 0);
const pyFailed = Number(/failures=(\d+)/.exec(py)?.[1] ?? 0) + Number(/errors=(\d+)/.exec(py)?.[1] ?? 0);
const passed = v.numPassedTests + ran - pyFailed;
const failed = v.numFailedTests + pyFailed;
console.log(`Tests: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 || v.success === false ? 1 : 0);
