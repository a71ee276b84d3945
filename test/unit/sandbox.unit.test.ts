// The sandbox's pure parts (lib/environments/sandbox.ts, requestDirs): its environment, its bwrap arguments, what counts as a
// refusal, which directories a request names. The sandbox itself is tested with real processes in
// test/integration/sandbox.test.ts and runtimes/python/tests/test_sandbox.py.
import { describe, expect, it } from 'vitest';
import { requestDirs } from '../../activities/torch-process';
import { bwrapArgs, pythonRoots, sandboxEnv, sandboxRefusal } from '../../lib/environments/sandbox';

describe('sandbox', () => {
  it('sandboxEnv passes on only the allowlist: no credentials, no TTD_*, whatever the worker has', () => {
    const worker = {
      AWS_SECRET_ACCESS_KEY: 'x'.repeat(40),
      AWS_ACCESS_KEY_ID: 'AKIA',
      TTD_HOME: '/srv/ttd',
      OMP_NUM_THREADS: '2',
      TORCHINDUCTOR_MAX_AUTOTUNE: '1',
      HOME: '/root',
      SSH_AUTH_SOCK: '/run/ssh.sock',
    };
    expect(sandboxEnv({ PYTHONPATH: '/repo/runtimes/python' }, worker)).toEqual({
      PATH: '/usr/local/bin:/usr/bin:/bin',
      LANG: 'C.UTF-8',
      HOME: '/tmp',
      TMPDIR: '/tmp',
      OMP_NUM_THREADS: '2',
      TORCHINDUCTOR_MAX_AUTOTUNE: '1',
      PYTHONPATH: '/repo/runtimes/python',
    });
  });

  it('bwrapArgs unshares everything, drops capabilities, clears the environment and binds the request dirs read-write', () => {
    const args = bwrapArgs({ readWrite: ['/tmp'], readOnly: ['/usr/bin/env'], cwd: '/tmp' }, { A: '1' });
    expect(args.slice(0, 5)).toEqual(['--unshare-all', '--die-with-parent', '--new-session', '--cap-drop', 'ALL']);
    expect(args).toContain('--clearenv');
    const pairs = (flag: string) => args.flatMap((a, i) => (a === flag ? [`${args[i + 1]} ${args[i + 2]}`] : []));
    expect(pairs('--bind')).toEqual(['/tmp /tmp']);
    expect(pairs('--ro-bind')).toContain('/usr /usr');
    expect(pairs('--setenv')).toEqual(['A 1']);
    expect(args.join(' ')).toMatch(/--tmpfs \/tmp/);
    expect(args.slice(-2)).toEqual(['--chdir', '/tmp']);
    // Never the home directories, TTD_HOME or the whole /etc.
    expect(
      pairs('--ro-bind')
        .concat(pairs('--ro-bind-try'))
        .some((p) => /^\/(root|home|etc) /.test(p)),
    ).toBe(false);
  });

  it('pythonRoots names a venv, the installation it was made from, and nothing of the system directories', () => {
    expect(pythonRoots('/usr/bin/python3')).toEqual([]);
    expect(pythonRoots('python3')).toEqual([]);
  });

  it('sandboxRefusal names a file operation outside the allowed dirs and a network operation, and nothing else', () => {
    const allowed = ['/tmp/ttd-work-1/ttd-stage-2'];
    expect(
      sandboxRefusal('RuntimeError: unable to open file </tmp/x/host.txt> in read-write mode: No such file or directory (2)', allowed),
    ).toBe("access to '/tmp/x/host.txt' (No such file or directory), outside its work directory");
    expect(sandboxRefusal("OSError: [Errno 30] Read-only file system: '/usr/lib/x'", allowed)).toMatch(
      /^access to '\/usr\/lib\/x' \(Read-only file system\)/,
    );
    expect(sandboxRefusal('OSError: [Errno 101] Network is unreachable', allowed)).toBe(
      'a network operation (Network is unreachable): the sandbox has no network',
    );
    expect(
      sandboxRefusal("FileNotFoundError: [Errno 2] No such file or directory: '/tmp/ttd-work-1/ttd-stage-2/data.csv'", allowed),
    ).toBeUndefined();
    expect(sandboxRefusal('ValueError: bad layer size', allowed)).toBeUndefined();
    // A source location in a traceback is not the path that was refused.
    expect(sandboxRefusal('File "/repo/model.py", line 3, in f\nPermission denied', allowed)).toBeUndefined();
  });

  it('requestDirs finds the work dir and the shared dir that path arguments name, never from params or the root itself', () => {
    const args = {
      model_path: '/tmp/ttd-work-a/ttd-stage-1/model.py',
      out_dir: '/tmp/ttd-work-a/ttd-stage-1',
      cache_dir: '/home/u/.ttd/cache/inductor/torch-2.13',
      artifacts: [{ name: 'x', path: '/tmp/ttd-work-a/ttd-stage-3/x.pt' }],
      params: { data_dir: '/tmp/ttd-work-a/ttd-stage-2' },
      other_dir: '/tmp/ttd-work-a',
      note: '/tmp/ttd-work-a/ttd-stage-4',
      escape_path: '/tmp/ttd-work-a/../etc',
    };
    expect(requestDirs(args, ['/tmp/ttd-work-a'], ['/home/u/.ttd/cache/inductor/torch-2.13'])).toEqual([
      '/home/u/.ttd/cache/inductor/torch-2.13',
      '/tmp/ttd-work-a/ttd-stage-1',
      '/tmp/ttd-work-a/ttd-stage-3',
    ]);
  });
});
