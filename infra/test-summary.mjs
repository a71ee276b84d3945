// Prints the suite's closing lines from vitest's JSON report and the Python unittest logs (one per torch environment):
// the slowest vitest files (with the CPU time each integration file used, where test/cpu-accounting.ts could count it:
// far less CPU than wall time means the file mostly waits) and the sum of file durations per folder (where the suite's
// time goes, to keep it fast), then 'Tests: N passed, N failed'.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const [vitestJson, ...pythonLogs] = process.argv.slice(2);
const v = JSON.parse(readFileSync(vitestJson, 'utf8'));
const files = v.testResults
  .map((f) => ({ name: relative(process.cwd(), f.name), start: f.startTime, end: f.endTime, seconds: (f.endTime - f.startTime) / 1000 }))
  .sort((a, b) => b.seconds - a.seconds);
const cpuDir = join('test-output', 'cpu');
const cpu = new Map(
  (existsSync(cpuDir) ? readdirSync(cpuDir) : []).map((f) => {
    const { file, cpuSeconds } = JSON.parse(readFileSync(join(cpuDir, f), 'utf8'));
    return [file, cpuSeconds];
  }),
);
const cpuOf = (name) => (cpu.has(name) ? `  ${cpu.get(name).toFixed(0).padStart(4)} CPU-s` : '');
console.log(`Slowest test files:${cpu.size ? ' (wall time, then the CPU time of the file and every process it started)' : ''}`);
for (const f of files.slice(0, 12)) console.log(`  ${f.seconds.toFixed(1).padStart(7)} s${cpuOf(f.name)}  ${f.name}`);
// Per folder: the sum of its files' durations, and the wall time from its first file's start to its last file's end.
const folders = new Map();
for (const f of files) {
  const folder = f.name.split('/').slice(0, -1).join('/');
  const t = folders.get(folder) ?? { sum: 0, start: Infinity, end: 0 };
  folders.set(folder, { sum: t.sum + f.seconds, start: Math.min(t.start, f.start), end: Math.max(t.end, f.end) });
}
const perFolder = [...folders].map(([folder, t]) => `${folder} ${t.sum.toFixed(0)} s (wall ${((t.end - t.start) / 1000).toFixed(0)} s)`);
console.log(`Sum of file durations: ${perFolder.join(', ')}`);
if (cpu.size) console.log(`CPU time of ${cpu.size} integration files: ${[...cpu.values()].reduce((a, b) => a + b, 0).toFixed(0)} CPU-s`);
let passed = v.numPassedTests;
let failed = v.numFailedTests;
for (const log of pythonLogs) {
  const py = readFileSync(log, 'utf8');
  const ran = Number(/Ran (\d+) tests?/.exec(py)?.[1] ?? 0);
  const pyFailed = Number(/failures=(\d+)/.exec(py)?.[1] ?? 0) + Number(/errors=(\d+)/.exec(py)?.[1] ?? 0);
  passed += ran - pyFailed;
  failed += pyFailed;
}
// The failed tests by name, with the first line of each one's error, last: CI shows only the tail of what ran.
const failures = [];
for (const f of v.testResults) {
  const name = relative(process.cwd(), f.name);
  for (const t of f.assertionResults ?? []) {
    if (t.status !== 'failed') continue;
    const first = String(t.failureMessages?.[0] ?? '').split('\n').find((l) => l.trim()) ?? '';
    failures.push(`  ${name} > ${t.fullName}: ${first.slice(0, 300)}`);
  }
  // A file that failed before any test ran (an import error, a hook's timeout) has no failed assertion to name.
  if (f.status === 'failed' && !(f.assertionResults ?? []).some((t) => t.status === 'failed')) {
    failures.push(`  ${name}: ${String(f.message ?? '').split('\n').find((l) => l.trim())?.slice(0, 300) ?? 'failed'}`);
  }
}
for (const log of pythonLogs) {
  const py = readFileSync(log, 'utf8');
  for (const m of py.matchAll(/^(FAIL|ERROR): (.+)$/gm)) failures.push(`  ${log}: ${m[1]} ${m[2]}`);
}
if (failures.length) console.log(`Failed:\n${failures.join('\n')}`);
console.log(`Tests: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 || v.success === false ? 1 : 0);
