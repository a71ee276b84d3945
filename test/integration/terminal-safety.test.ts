// The attacks of issue 14 on a terminal, through the real CLI, Temporal and torch: a model file whose error carries
// escape sequences (a new window title, a cleared line, a fake "ALL GATES PASSED"), and an actor, approver and reason
// carrying them into the audit log. What reaches stdout and stderr holds no control character but newline; --json
// stays exact JSON that parses back to the very strings.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { command as runCommand, quickSeedSpec, repoRoot, runTtd, seedDir, tempDir, testEnv, writeSpec, type TtdRun } from '../helpers';

/** Retitles the terminal, clears the line, moves up, clears it and prints a green verdict; then a C1 CSI and a
 * right-to-left override. */
const ATTACK = '\x1b]0;pwned\x07\x1b[2K\r\x1b[1A\x1b[2K\x1b[32mALL GATES PASSED\x1b[0m\u009b2K\u202egnirts';
/** ATTACK as the terminal shows it: every control as \xHH or \uHHHH. */
const SHOWN = '\\x1b]0;pwned\\x07\\x1b[2K\\x0d\\x1b[1A\\x1b[2K\\x1b[32mALL GATES PASSED\\x1b[0m\\x9b2K\\u202egnirts';
/** What a terminal would act on: every control but newline, and the bidi controls. */
const ACTS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/** A model file whose build_model raises ATTACK (Python reads the escapes in the string literal). */
const HOSTILE_MODEL = `"""Fixture: build_model raises an error whose text is terminal control sequences."""
import torch


def build_model(params):
    raise ValueError(${JSON.stringify(ATTACK)})


def dataset(params, split):
    return torch.zeros(4, 2), torch.zeros(4, 1)
`;

/** Lines of output that would read as a verdict of ttd's own: the fake text at the start of a line. (Inside an
 * indented message block a line of the model's own text is allowed: it is shown as part of that message.) */
const fakeVerdicts = (text: string) => text.split('\n').filter((l) => /^(\x1b\[\d*m)*ALL GATES PASSED/.test(l));

function expectInert(r: TtdRun): void {
  expect(r.stdout).not.toMatch(ACTS);
  expect(r.stderr).not.toMatch(ACTS);
  expect(fakeVerdicts(r.stdout + r.stderr)).toEqual([]);
}

describe('untrusted text on a terminal', () => {
  const home = tempDir();
  const env = testEnv(home, inject('temporalAddress'));

  const hostileSpec = (name: string) => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hostile.py'), HOSTILE_MODEL);
    writeFileSync(join(dir, 'pipeline.yaml'), `name: ${name}\nmodel: ./hostile.py\ntrain: { epochs: 1 }\nparity: { runtimes: [python] }\n`);
    return join(dir, 'pipeline.yaml');
  };

  it('a model file whose error carries escape sequences fails the run, and the terminal gets them as text', async () => {
    const r = await runTtd(['run', hostileSpec('hostile-text')], env);
    expect(r.code, r.stderr).toBe(2);
    expectInert(r);
    // The table cell and the full message show the escapes, so the reader sees what the model file tried.
    expect(r.stdout).toContain('model_error  train failed: ValueError: \\x1b]0;pwned\\x07\\x1b[2K\\x0d\\x1b[1A');
    expect(r.stdout).toContain(`  ValueError: ${SHOWN}`);
    expect(r.stdout).toMatch(/^failed: hostile-text was not promoted$/m);
  });

  it('with --json the message is exact JSON of the very string, and the raw output holds no control character', async () => {
    const r = await runTtd(['run', hostileSpec('hostile-json'), '--json'], env);
    expect(r.code, r.stderr).toBe(2);
    expectInert(r);
    const result = JSON.parse(r.stdout) as RunResult;
    expect(result.gates[0]).toMatchObject({ gate: 'training', passed: false, code: 'model_error' });
    expect(result.gates[0].message).toContain(`ValueError: ${ATTACK}`);
    expect(r.stdout).toContain('\\u001b]0;pwned\\u0007'); // JSON's own escapes for C0
    expect(r.stdout).toContain('\\u009b2K\\u202egnirts'); // and ours for C1 and bidi, which JSON.stringify leaves raw
  });

  it('on a real terminal, in colour, no title, cursor or line escape of the model file reaches it', async () => {
    const command = `${process.execPath} ${join(repoRoot, 'bin', 'ttd')} run ${hostileSpec('hostile-tty')} --no-cache`;
    const r = await runCommand('script', ['-qfec', command, '/dev/null'], {
      env: { ...process.env, ...env, NO_COLOR: undefined, COLUMNS: '200' },
      timeout: 170_000,
    });
    expect(r.code).toBe(2);
    expect(r.stdout).not.toContain('\x1b]'); // no operating-system command: the title stays
    expect(r.stdout).not.toMatch(/[\u0080-\u009f\u202a-\u202e\u2066-\u2069]/);
    expect(r.stdout).not.toContain('\x1b[1A'); // no cursor up: nothing printed earlier is overwritten
    expect(r.stdout).toContain('\\x1b]0;pwned\\x07');
    expect(r.stdout).toMatch(/\x1b\[31mfailed: hostile-tty was not promoted\x1b\[0m/); // our own colour still works
  });

  it('an actor carrying escapes is refused before anything starts, naming TTD_ACTOR, and nothing reaches the terminal', async () => {
    const spec = writeSpec(tempDir(), quickSeedSpec('hostile-actor'), join(seedDir, 'model.py'));
    const r = await runTtd(['run', spec, '--json'], { ...env, TTD_ACTOR: `mallory${ATTACK}\nALL GATES PASSED` });
    expect(r.code).toBe(2);
    expectInert(r);
    const error = JSON.parse(r.stdout).error;
    expect(error.code).toBe('config_invalid');
    expect(error.message).toContain('TTD_ACTOR=');
    expect(error.message).toContain('expected a name of at most 128 printable characters');
  });

  it('an approver and reason carrying escapes and newlines are shown escaped in ttd audit log, one line each', async () => {
    const actor = 'mallory';
    const approver = `eve\r\x1b[2K\u202e`;
    const reason = `fine\nALL GATES PASSED\x1b]0;x\x07`;
    const spec = writeSpec(
      tempDir(),
      quickSeedSpec('hostile-audit', {
        parity: { runtimes: ['python'], atol: 1e-5, rtol: 1e-4 },
        promote: { approval: 'required' },
      }),
      join(seedDir, 'model.py'),
    );
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'ttd'), 'run', spec, '--json'], {
      cwd: repoRoot,
      env: { ...process.env, NO_COLOR: '1', ...env, TTD_ACTOR: actor },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const runId = await new Promise<string>((resolve) =>
      child.stderr.on('data', (d) => {
        stderr += d;
        const m = /^run (\S+): /m.exec(stderr);
        if (m) resolve(m[1]);
      }),
    );
    const finished = new Promise<number | null>((resolve) => child.on('close', resolve));
    const deadline = Date.now() + 150_000;
    for (;;) {
      const status = await runTtd(['status', runId, '--json'], env);
      if (status.code === 0 && JSON.parse(status.stdout).status === 'awaiting_approval') break;
      expect(Date.now() < deadline, `run ${runId} never awaited approval: ${stderr}`).toBe(true);
      await new Promise((r) => setTimeout(r, 300));
    }
    const approved = await runTtd(['approve', runId, '--by', approver, '--reason', reason], env);
    expect(approved.code, approved.stderr).toBe(0);
    expectInert(approved);
    expect(approved.stdout).toBe(`${runId}: approved by eve\\x0d\\x1b[2K\\u202e\n`);
    expect(await finished).toBe(0);
    expect(stdout).not.toMatch(ACTS);
    expect(stderr).not.toMatch(ACTS);

    const log = await runTtd(['audit', 'log', 'hostile-audit'], env);
    expect(log.code, log.stderr).toBe(0);
    expectInert(log);
    const lines = log.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2); // the header and the one record: no newline in a field starts a line of its own
    expect(lines[1]).toContain(`mallory (approved by eve\\x0d\\x1b[2K\\u202e)`);
    expect(lines[1]).toContain('fine\\x0aALL GATES PASSED\\x1b]0;x\\x07');

    const json = await runTtd(['audit', 'log', 'hostile-audit', '--json'], env);
    expectInert(json);
    expect(JSON.parse(json.stdout).records).toEqual([expect.objectContaining({ actor, approvedBy: approver, reason, runId })]);

    const show = await runTtd(['show', 'hostile-audit:1'], env);
    expect(show.code, show.stderr).toBe(0);
    expectInert(show);
    expect(show.stdout).toContain('by mallory (manual)');

    // The model card in Markdown: the approver and reason as escaped text on one line, inert on a terminal.
    const card = await runTtd(['card', 'hostile-audit:1'], env);
    expect(card.code, card.stderr).toBe(0);
    expectInert(card);
    expect(card.stdout).toContain('Approved by eve \\\\x1b\\[2K\\\\u202e: fine ALL GATES PASSED\\\\x1b\\]0;x\\\\x07.');
    const cardJson = await runTtd(['card', 'hostile-audit:1', '--json'], env);
    expectInert(cardJson);
    const parsed = JSON.parse(cardJson.stdout) as { approval: unknown; audit: { records: unknown[] } };
    expect(parsed.approval).toEqual({ by: approver, reason });
    expect(parsed.audit.records).toEqual([expect.objectContaining({ actor, approvedBy: approver, reason })]);
  });

  it('arguments echoed in errors, by ttd and by commander, are escaped too', async () => {
    const status = await runTtd(['status', `x${ATTACK}\nALL GATES PASSED`], env);
    expect(status.code).toBe(2);
    expectInert(status);
    expect(status.stderr).toBe(`ttd: run 'x${SHOWN}\\x0aALL GATES PASSED' does not exist on this server [run_not_found]\n`);
    const unknown = await runTtd([`st${ATTACK}\nALL GATES PASSED`], env);
    expect(unknown.code).toBe(2);
    expectInert(unknown);
    expect(unknown.stderr).toContain("unknown command 'st\\x1b]0;pwned\\x07");
  });
});
