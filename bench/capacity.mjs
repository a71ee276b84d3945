// Benchmark (not a test): how busy one worker host keeps its cores. N seed pipelines at once on one `ttd worker`, against
// the CPU-bound limit (N × the CPU-seconds of one pipeline ÷ cores), with each stage's queue wait from the runs' histories.
// Usage: node bench/capacity.mjs [CONCURRENT] [ROUNDS]   (defaults 20 and 1; part of `make bench`)
// BASELINE=<git ref> adds that commit's worker, built in a temporary folder, interleaved round by round with this one;
// CAP_CONFIGS='[{"name": "...", "args": ["--concurrency", "8"], "env": {...}}]' adds workers of this checkout with
// other arguments (and "nodeArgs": Node's own, e.g. --cpu-prof); QUIET=C waits before each round until the rest of the host keeps at most C cores busy; CAP_OUT=FILE
// also writes the report there; CAP_SPEC=FILE measures that pipeline instead of the seed.
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  realpathSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { median, root, seedSpec, sh, startServer, ttdEnv } from './common.mjs';

const require = createRequire(import.meta.url);
const { Client, Connection } = require('@temporalio/client');

const concurrent = Number(process.argv[2] ?? 20);
const rounds = Number(process.argv[3] ?? 1);
const cores = availableParallelism();
// QUIET=C: before each round, wait until other processes keep no more than C cores busy (for at most QUIET_WAIT_S).
const quiet = process.env.QUIET ? Number(process.env.QUIET) : undefined;
const quietWaitMs = Number(process.env.QUIET_WAIT_S ?? 1800) * 1000;
const TICKS = Number(sh('getconf', ['CLK_TCK']).stdout.trim()) || 100;

// The seed's TorchScript pipeline on Debian's torch 1.13 (the configuration issue 17 measured): the AOTInductor compile
// is a C++ build of seconds per run and has a bench of its own (bench/aoti.mjs).
const specDir = mkdtempSync(join(tmpdir(), 'ttd-bench-spec-'));
// CAP_SPEC=FILE measures that pipeline instead (sizing a team's own models: docs/deploy.md, "Sizing").
const specPath = process.env.CAP_SPEC
  ? resolve(process.env.CAP_SPEC)
  : seedSpec(specDir, ['environment: torch-1.13', 'formats: [torchscript]']);

// CPU time of a process and of its reaped children (utime + stime + cutime + cstime), in seconds.
function cpuSeconds(pid, withChildren = true) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd on: state is [0]
    const own = Number(fields[11]) + Number(fields[12]);
    return (withChildren ? own + Number(fields[13]) + Number(fields[14]) : own) / TICKS;
  } catch {
    return 0; // gone meanwhile: its time is in its parent's cutime once reaped
  }
}
/** The host's CPU time so far, all cores together: [busy, idle] seconds (/proc/stat; iowait counts as idle). */
function hostCpu() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  return [(f.slice(0, 8).reduce((a, b) => a + b, 0) - idle) / TICKS, idle / TICKS];
}
function parents() {
  const out = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      out.set(Number(d), Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${d}/status`, 'utf8'))[1]));
    } catch {
      /* gone */
    }
  }
  return out;
}
/** The CPU-seconds of a process tree so far: every live process's own and its reaped children's time (the server's;
 * a worker's only where no cgroup can be made, since its sandboxed processes' time is lost: cpuMeter). */
function treeCpu(pid) {
  const ppid = parents();
  const all = [pid];
  for (let i = 0; i < all.length; i++) for (const [p, pp] of ppid) if (pp === all[i]) all.push(p);
  return all.reduce((sum, p) => sum + cpuSeconds(p), 0);
}

/** A meter of the worker's CPU-seconds. A process tree undercounts it: bwrap's init in a sandbox's PID namespace is
 * never reaped by the outer bwrap (the exit status comes back through a pipe), so the CPU time of every sandboxed
 * process that ended (parity runners, fresh torch processes) is in no live ancestor's cutime: measured here, 0.0 of
 * 0.5 CPU-s for a busy loop under `bwrap --unshare-pid`. A cgroup of its own counts every process the worker starts,
 * sandboxed or not; made where this user may (cgroup v2, else v1's cpuacct), else the tree, marked as an undercount. */
function cpuMeter(pid) {
  const name = `ttd-bench-${process.pid}-${pid}`;
  // cgroup v2 (a child of the unified hierarchy's root; cpu.stat's usage_usec needs no controller), else v1's cpuacct.
  const v2 = {
    probe: 'cgroup.controllers',
    read: (d) => Number(/usage_usec (\d+)/.exec(readFileSync(join(d, 'cpu.stat'), 'utf8'))[1]) / 1e6,
  };
  const candidates = [
    { dir: '/sys/fs/cgroup', ...v2 },
    { dir: '/sys/fs/cgroup/unified', ...v2 },
    { dir: '/sys/fs/cgroup/cpuacct', probe: 'cpuacct.usage', read: (d) => Number(readFileSync(join(d, 'cpuacct.usage'), 'utf8')) / 1e9 },
  ];
  for (const c of candidates) {
    const dir = join(c.dir, name);
    try {
      readFileSync(join(c.dir, c.probe));
      mkdirSync(dir);
    } catch {
      continue;
    }
    try {
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
      c.read(dir);
      return { method: `cgroup ${c.dir}`, dir, read: () => c.read(dir), close: () => rmdirQuietly(dir) };
    } catch {
      rmdirQuietly(dir);
    }
  }
  return { method: 'process tree (undercounts sandboxed processes)', read: () => treeCpu(pid), close: async () => {} };
}
// A cgroup is removed once its last process has gone (the sandboxes' may outlive the worker by a moment).
async function rmdirQuietly(dir) {
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      if (err.code === 'ENOENT') return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  process.stderr.write(`could not remove the cgroup ${dir}\n`);
}

/** Samples how many of the worker's threads want a core (state R: running or waiting for one) every 100 ms, from its
 * cgroup: the core-seconds the worker would leave idle on a host of its own (∫ max(0, cores − runnable) dt) do not depend
 * on what else runs on a shared host, unlike the wall time. Also the cgroup's CPU pressure (time some of its threads
 * waited for a core: the other tenants' share of the wall time). */
function demandSampler(dir) {
  const tids = () => {
    try {
      return readFileSync(join(dir, 'cgroup.threads'), 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };
  const pressure = () => {
    try {
      return Number(/some .*total=(\d+)/.exec(readFileSync(join(dir, 'cpu.pressure'), 'utf8'))[1]) / 1e6;
    } catch {
      return NaN;
    }
  };
  const p0 = pressure();
  let samples = 0;
  let idle = 0; // Σ max(0, cores − runnable) over samples
  let starved = 0; // samples with fewer runnable threads than cores
  let last = performance.now();
  const timer = setInterval(() => {
    let runnable = 0;
    for (const tid of tids()) {
      try {
        const stat = readFileSync(`/proc/${tid}/stat`, 'utf8');
        if (stat[stat.lastIndexOf(')') + 2] === 'R') runnable++;
      } catch {
        /* gone */
      }
    }
    const now = performance.now();
    const dt = (now - last) / 1000;
    last = now;
    samples++;
    idle += Math.max(0, cores - runnable) * dt;
    if (runnable < cores) starved += dt;
  }, 100);
  return () => {
    clearInterval(timer);
    return { idleCoreS: idle, starvedS: starved, pressureS: pressure() - p0, samples };
  };
}

/** From the runs' histories (absolute times): the torch slots' occupancy over the crowd's window, the core-seconds of
 * slots left empty while torch work was queued, and those left empty with nothing queued (the tail, or every run in
 * a control step). */
function slotTimeline(rows, t0, t1, slots) {
  const torch = rows.filter((x) => x.torch);
  const edges = [];
  for (const x of torch) {
    edges.push([x.scheduledAt, 'q', 1], [x.startedAt, 'q', -1], [x.startedAt, 'r', 1], [x.closedAt, 'r', -1]);
  }
  edges.push([t0, 'x', 0], [t1, 'x', 0]);
  edges.sort((a, b) => a[0] - b[0]);
  let queued = 0;
  let running = 0;
  let prev = t0;
  let emptyWhileQueued = 0;
  let emptyNoneQueued = 0;
  let busy = 0;
  let tailStart = t1;
  for (const [t, kind, d] of edges) {
    const dt = Math.max(0, Math.min(t, t1) - Math.max(prev, t0)) / 1000;
    const free = Math.max(0, slots - running);
    busy += Math.min(running, slots) * dt;
    if (queued > 0) emptyWhileQueued += free * dt;
    else emptyNoneQueued += free * dt;
    prev = Math.max(prev, t);
    if (kind === 'q') queued += d;
    if (kind === 'r') running += d;
  }
  // The tail: from the last moment every slot was busy to the end.
  const byTime = [...torch].sort((a, b) => a.closedAt - b.closedAt);
  let full = t0;
  let r = 0;
  const ev = torch
    .flatMap((x) => [
      [x.startedAt, 1],
      [x.closedAt, -1],
    ])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (const [t, d] of ev) {
    r += d;
    if (r >= slots) full = t;
  }
  tailStart = Math.max(full, byTime.length ? t0 : t1);
  return { slotBusyS: busy, emptyWhileQueuedS: emptyWhileQueued, emptyNoneQueuedS: emptyNoneQueued, tailS: (t1 - tailStart) / 1000 };
}

/** Resident memory of a process tree in MiB (each process's VmRSS: pages they share count once per process). */
function treeRss(pid) {
  const ppid = parents();
  const all = [pid];
  for (let i = 0; i < all.length; i++) for (const [p, pp] of ppid) if (pp === all[i]) all.push(p);
  return all.reduce((sum, p) => {
    try {
      return sum + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) / 1024;
    } catch {
      return sum;
    }
  }, 0);
}

/** A worker: `ttd worker` of a checkout (this one, or the baseline's) with extra arguments and environment. */
async function startWorker(checkout, address, home, args, extraEnv, nodeArgs = []) {
  const env = ttdEnv(address, home, extraEnv);
  const worker = spawn(process.execPath, [...nodeArgs, join(checkout, 'bin', 'ttd'), 'worker', ...args], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const cpu = cpuMeter(worker.pid); // before Node has started anything
  let stderr = '';
  worker.stderr.on('data', (d) => (stderr += d));
  while (!/worker serving/.test(stderr)) {
    if (worker.exitCode !== null) throw new Error(`ttd worker exited: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // The fork server imports torch at start: wait until it has forked its spares, so that its start is not measured.
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && !hasSpare(worker.pid)) await new Promise((r) => setTimeout(r, 200));
  return { worker, env, cpu, stderr: () => stderr };
}
function hasSpare(pid) {
  const ppid = parents();
  const all = [pid];
  for (let i = 0; i < all.length; i++) for (const [p, pp] of ppid) if (pp === all[i]) all.push(p);
  return all.some((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'ttd-spare';
    } catch {
      return false;
    }
  });
}

async function stopWorker(w) {
  w.worker.kill('SIGTERM');
  await new Promise((r) => (w.worker.exitCode !== null ? r() : w.worker.once('exit', r)));
  await w.cpu.close();
}

const ms = (t) => Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);

/** Each activity's queue wait (scheduled → started) and run time (started → closed), and each workflow task's queue
 * wait, from a run's history. */
async function waits(client, workflowId) {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map();
  const started = new Map();
  const out = [];
  let wfScheduled;
  for (const e of history.events) {
    const id = Number(e.eventId);
    const t = ms(e.eventTime);
    if (e.activityTaskScheduledEventAttributes)
      scheduled.set(id, {
        t,
        type: e.activityTaskScheduledEventAttributes.activityType.name,
        queue: e.activityTaskScheduledEventAttributes.taskQueue.name,
      });
    else if (e.activityTaskStartedEventAttributes) started.set(Number(e.activityTaskStartedEventAttributes.scheduledEventId), t);
    else if (e.activityTaskCompletedEventAttributes || e.activityTaskFailedEventAttributes) {
      const a = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes;
      const s = scheduled.get(Number(a.scheduledEventId));
      const st = started.get(Number(a.scheduledEventId));
      out.push({
        stage: s.type,
        wait: st - s.t,
        run: t - st,
        scheduledAt: s.t,
        startedAt: st,
        closedAt: t,
        torch: !s.queue.endsWith('-control'),
        queue: s.queue,
      });
    } else if (e.workflowTaskScheduledEventAttributes) wfScheduled = t;
    else if (e.workflowTaskStartedEventAttributes && wfScheduled !== undefined) {
      out.push({ stage: '(workflow task)', wait: t - wfScheduled, run: 0 });
      wfScheduled = undefined;
    }
  }
  return out;
}

/** Waits (up to `maxMs`) until the host's cores are busier than `quiet` cores for 5 s in a row no more: on a shared
 * machine the bench can only show how busy the worker keeps the cores when nothing else wants them. */
async function waitForQuiet(quiet, maxMs) {
  const deadline = Date.now() + maxMs;
  for (;;) {
    const [b1, i1] = hostCpu();
    await new Promise((r) => setTimeout(r, 5_000));
    const [b2, i2] = hostCpu();
    const busy = ((b2 - b1) / (b2 - b1 + i2 - i1)) * cores;
    if (busy <= quiet) return busy;
    if (Date.now() > deadline) return busy;
  }
}

/** One configuration's round: a fresh worker and home; one pipeline alone (twice: the first warms up) for its
 * CPU-seconds, then `concurrent` at once. */
async function round(client, server, cfg) {
  const address = server.address;
  const home = mkdtempSync(join(tmpdir(), 'ttd-bench-cap-'));
  const w = await startWorker(cfg.checkout, address, home, cfg.args, cfg.env, cfg.nodeArgs);
  try {
    // `ttd run --detach` as a user starts a run: it validates the spec and stores the model file; its input is then
    // reused, with fresh run ids, so that the N starts below cost one Node process instead of N.
    const r = sh(process.execPath, [join(cfg.checkout, 'bin', 'ttd'), 'run', specPath, '--detach', '--json', '--no-cache'], { env: w.env });
    const first = JSON.parse(r.stdout).runId;
    const firstResult = await client.workflow.getHandle(first).result();
    if (firstResult.status !== 'promoted')
      throw new Error(`the warm-up run ended ${firstResult.status}: ${JSON.stringify(firstResult).slice(0, 1500)}`);
    const history = await client.workflow.getHandle(first).fetchHistory();
    const startedAttrs = history.events[0].workflowExecutionStartedEventAttributes;
    const taskQueue = startedAttrs.taskQueue.name;
    const { arrayFromPayloads } = require('@temporalio/common');
    const { defaultPayloadConverter } = require('@temporalio/common');
    const [input] = arrayFromPayloads(defaultPayloadConverter, startedAttrs.input.payloads);
    const start = (suffix) => {
      const runId = `${first}-${suffix}`;
      return client.workflow.start('pipelineWorkflow', { workflowId: runId, taskQueue, args: [{ ...input, runId }] });
    };

    const c0 = w.cpu.read();
    const t0 = performance.now();
    const alone = await (await start('alone')).result();
    const aloneMs = performance.now() - t0;
    const oneCpu = w.cpu.read() - c0;
    if (alone.status !== 'promoted') throw new Error(`the lone run ended ${alone.status}`);

    const c1 = w.cpu.read();
    const n1 = cpuSeconds(w.worker.pid, false);
    const s1 = treeCpu(server.pid);
    const [busy1, idle1] = hostCpu();
    const self1 = process.cpuUsage();
    const demand = w.cpu.dir ? demandSampler(w.cpu.dir) : () => undefined;
    const wall1 = Date.now();
    const t1 = performance.now();
    let peakRss = 0;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, treeRss(w.worker.pid))), 1000);
    const handles = await Promise.all(Array.from({ length: concurrent }, (_, i) => start(`crowd-${i}`)));
    const results = await Promise.all(handles.map((h) => h.result()));
    const crowdMs = performance.now() - t1;
    const wall2 = Date.now();
    const idle = demand();
    clearInterval(sampler);
    const crowdCpu = w.cpu.read() - c1;
    const nodeCpu = cpuSeconds(w.worker.pid, false) - n1;
    const serverCpu = treeCpu(server.pid) - s1;
    const [busy2, idle2] = hostCpu();
    const self2 = process.cpuUsage(self1);
    const benchCpu = (self2.user + self2.system) / 1e6;
    // Everything else on the host meanwhile: whatever else runs there (a shared machine).
    const otherCpu = busy2 - busy1 - crowdCpu - serverCpu - benchCpu;
    const hostIdle = idle2 - idle1;
    const promoted = results.filter((x) => x.status === 'promoted').length;
    const perRun = await Promise.all(handles.map((h) => waits(client, h.workflowId)));
    const slots = Number(/(\d+) torch activities at once/.exec(w.stderr())?.[1] ?? cores);
    const timeline = slotTimeline(perRun.flat(), wall1, wall2, slots);
    return {
      name: cfg.name,
      cpuMethod: w.cpu.method,
      oneCpu,
      aloneMs,
      crowdMs,
      crowdCpu,
      nodeCpu,
      serverCpu,
      benchCpu,
      otherCpu,
      hostIdle,
      peakRss,
      promoted,
      perRun: perRun.flat(),
      idle,
      slots,
      timeline,
      load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    };
  } finally {
    await stopWorker(w);
    rmSync(home, { recursive: true, force: true });
  }
}

/** CAP_SHARES=W: this script, the server and the workers (all started after this) in a cgroup v1 `cpu` group of
 * weight W (a process group of its own at nice 0 weighs 1024), so that on a shared host the other tenants' load takes
 * less of the cores. A measuring aid on a busy machine, named in the report; a quiet host needs none. */
function prioritize() {
  const shares = process.env.CAP_SHARES;
  if (!shares) return undefined;
  const dir = join('/sys/fs/cgroup/cpu', `ttd-bench-${process.pid}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'cpu.shares'), shares);
  writeFileSync(join(dir, 'cgroup.procs'), String(process.pid));
  return {
    close: () => {
      writeFileSync('/sys/fs/cgroup/cpu/cgroup.procs', String(process.pid));
      rmdirQuietly(dir);
    },
  };
}

/** A checkout of `ref` in a temporary folder, built as `make setup` step 4 builds this one (the environments and
 * node_modules are this checkout's, linked). */
function buildBaseline(ref) {
  const dir = mkdtempSync(join(tmpdir(), 'ttd-bench-baseline-'));
  sh('bash', ['-c', `git -C '${root}' archive '${ref}' | tar -x -C '${dir}'`]);
  for (const link of ['node_modules', '.venv', '.torch']) symlinkSync(join(root, link), join(dir, link));
  mkdirSync(join(dir, 'build'), { recursive: true });
  for (const link of readdirSync(join(root, 'build'))) symlinkSync(join(root, 'build', link), join(dir, 'build', link));
  // The libtorch runner's RUNPATH names this checkout's torch (.torch/…/torch/lib), which the baseline's sandbox does
  // not bind: its copy names the real path of the same libraries instead (bound as its Python's real prefix).
  const runner = join(root, 'build', 'libtorch-2.13', 'ttd-libtorch-runner');
  if (existsSync(runner)) {
    const from = Buffer.from(join(root, '.torch'));
    const to = Buffer.from(realpathSync(join(root, '.torch')));
    const bytes = readFileSync(runner);
    const at = bytes.indexOf(from);
    if (at >= 0 && to.length <= from.length) {
      const end = bytes.indexOf(0, at);
      const tail = bytes.subarray(at + from.length, end);
      Buffer.concat([to, tail, Buffer.alloc(end - at - to.length - tail.length)]).copy(bytes, at);
      rmSync(join(dir, 'build', 'libtorch-2.13'));
      mkdirSync(join(dir, 'build', 'libtorch-2.13'));
      writeFileSync(join(dir, 'build', 'libtorch-2.13', 'ttd-libtorch-runner'), bytes, { mode: 0o755 });
    }
  }
  sh('bash', ['-c', 'npx tsc -p tsconfig.json && node infra/bundle-workflows.js && node infra/gen-contract.js'], { cwd: dir });
  return dir;
}

const pct = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

function report(results) {
  const lines = [];
  lines.push(
    `machine: ${cores} × ${cpus()[0].model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; ${concurrent} at once, ${rounds} round(s), configurations interleaved; pipeline ${process.env.CAP_SPEC ?? 'the seed (torch-1.13, torchscript)'}${process.env.CAP_SHARES ? `; bench, server and workers in a cpu cgroup of weight ${process.env.CAP_SHARES} (CAP_SHARES)` : ''}`,
  );
  lines.push('');
  lines.push(
    '| worker | one alone, wall | its CPU-s | CPU-bound limit | at once, wall | **wall ÷ limit** | worker CPU-s | of which its Node process | cores busy with the worker | server CPU-s | bench script CPU-s | other CPU-s on the host | host idle core-s | worker tree peak RSS | promoted |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  const methods = [...new Set(results.map((r) => r.cpuMethod))];
  for (const r of results) {
    const limit = (concurrent * r.oneCpu) / cores;
    const wall = r.crowdMs / 1000;
    lines.push(
      `| ${r.name} | ${(r.aloneMs / 1000).toFixed(2)} s | ${r.oneCpu.toFixed(2)} | ${limit.toFixed(1)} s | ${wall.toFixed(1)} s | **${(wall / limit).toFixed(2)}×** | ${r.crowdCpu.toFixed(1)} | ${r.nodeCpu.toFixed(1)} | ${(r.crowdCpu / wall).toFixed(2)} of ${cores} | ${r.serverCpu.toFixed(1)} | ${r.benchCpu.toFixed(1)} | ${r.otherCpu.toFixed(1)} | ${r.hostIdle.toFixed(1)} | ${(r.peakRss / 1024).toFixed(1)} GiB | ${r.promoted}/${concurrent} |`,
    );
  }
  lines.push('');
  lines.push(`worker CPU-seconds measured by: ${methods.join('; ')}`);
  lines.push('');
  lines.push(
    'Where the wall time goes (core-seconds of the crowd\'s window; "wanted no core": the worker had fewer runnable threads than cores, sampled every 100 ms from its cgroup, so it does not depend on the rest of the host; "waited for a core": its cgroup\'s CPU pressure, time some of its threads were runnable but not running):',
  );
  lines.push(
    '| worker | load average after | wall × cores | worker CPU-s | 20 × one alone | worker wanted no core (core-s) | of which: fewer runnable than cores (s) | waited for a core (s) | torch slots | slot-s busy | slot-s empty while torch work queued | slot-s empty, none queued | tail: last time every slot was busy → end (s) |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const wall = r.crowdMs / 1000;
    const i = r.idle ?? {};
    const t = r.timeline ?? {};
    const f = (x, d = 1) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '—');
    lines.push(
      `| ${r.name} | ${r.load ?? '—'} | ${f(wall * cores)} | ${f(r.crowdCpu)} | ${f(concurrent * r.oneCpu)} | ${f(i.idleCoreS)} | ${f(i.starvedS)} | ${f(i.pressureS)} | ${r.slots ?? '—'} | ${f(t.slotBusyS)} | ${f(t.emptyWhileQueuedS)} | ${f(t.emptyNoneQueuedS)} | ${f(t.tailS)} |`,
    );
  }
  for (const name of [...new Set(results.map((r) => r.name))]) {
    const rows = results.filter((r) => r.name === name).flatMap((r) => r.perRun);
    const stages = [...new Set(rows.map((x) => x.stage))];
    lines.push('');
    lines.push(`${name}: per stage, over every run at once (ms): queue wait (scheduled → started) median / p90 / max, and run time median`);
    lines.push('| stage | count | wait median | wait p90 | wait max | run median |');
    lines.push('|---|---|---|---|---|---|');
    for (const s of stages) {
      const xs = rows.filter((x) => x.stage === s);
      const w = xs.map((x) => x.wait);
      lines.push(
        `| ${s} | ${xs.length} | ${Math.round(median(w))} | ${Math.round(pct(w, 0.9))} | ${Math.round(Math.max(...w))} | ${Math.round(median(xs.map((x) => x.run)))} |`,
      );
    }
  }
  return lines.join('\n');
}

async function main() {
  const configs = [{ name: 'this checkout', checkout: root, args: [], env: {} }];
  let baselineDir;
  if (process.env.BASELINE) {
    baselineDir = buildBaseline(process.env.BASELINE);
    configs.unshift({ name: `baseline ${process.env.BASELINE}`, checkout: baselineDir, args: [], env: {} });
  }
  if (process.env.CAP_CONFIGS)
    configs.push(...JSON.parse(process.env.CAP_CONFIGS).map((c) => ({ checkout: root, env: {}, args: [], ...c })));
  const priority = prioritize();
  const server = await startServer();
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const results = [];
  try {
    for (let i = 0; i < rounds; i++) {
      for (const cfg of configs) {
        if (quiet !== undefined) {
          const busy = await waitForQuiet(quiet, quietWaitMs);
          process.stderr.write(`host busy ${busy.toFixed(2)} cores before the round of ${cfg.name}\n`);
        }
        const r = await round(client, server, cfg);
        if (quiet !== undefined) r.name = `${cfg.name} (quiet ≤ ${quiet})`;
        // Each round as it ends, so that a long run that fails later keeps what it measured.
        if (process.env.CAP_OUT) appendFileSync(`${process.env.CAP_OUT}.jsonl`, `${JSON.stringify(r)}\n`);
        results.push(r);
        process.stderr.write(`${r.name}: ${(r.crowdMs / 1000).toFixed(1)} s for ${concurrent}, one alone ${r.oneCpu.toFixed(2)} CPU-s\n`);
      }
    }
    const text = report(results);
    console.log(text);
    if (process.env.CAP_OUT) writeFileSync(process.env.CAP_OUT, `${text}\n`);
  } finally {
    await connection.close();
    server.stop();
    rmSync(specDir, { recursive: true, force: true });
    if (baselineDir) rmSync(baselineDir, { recursive: true, force: true });
    priority?.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
