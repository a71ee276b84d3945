// `systemctl` for the runbook rehearsal (test/integration/runbook.test.ts), on a machine where systemd is not running:
// starts a unit's ExecStart as systemd would (its own Environment= and EnvironmentFile= over systemd's default PATH,
// nothing of the caller's environment, in its WorkingDirectory=, output to a journal file) and stops it with its
// KillSignal=, waiting TimeoutStopSec= before SIGKILL. Only what the runbook uses: daemon-reload, enable [--now],
// start, stop, is-active. Unit files are read from $SYSTEMCTL_UNIT_DIR; pids and journals go to $SYSTEMCTL_STATE_DIR.
import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const unitDir = process.env.SYSTEMCTL_UNIT_DIR;
const stateDir = process.env.SYSTEMCTL_STATE_DIR;
const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function fail(message) {
  process.stderr.write(`systemctl (rehearsal): ${message}\n`);
  process.exit(1);
}

/** The [Service] settings of a unit: single values, and every Environment= line. */
function readUnit(name) {
  const file = join(unitDir, name.endsWith('.service') ? name : `${name}.service`);
  if (!existsSync(file)) fail(`Unit ${name} not found (${file})`);
  const service = {};
  const environment = [];
  let section = '';
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1];
      continue;
    }
    const eq = line.indexOf('=');
    if (section !== 'Service' || eq < 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (key === 'Environment') environment.push(...value.split(/\s+/).filter(Boolean));
    else service[key] = value;
  }
  return { service, environment };
}

// KEY=VALUE lines; blank lines and comments skipped, as systemd's EnvironmentFile= reads them (no quoting needed here).
function readEnvironmentFile(path) {
  const optional = path.startsWith('-');
  const file = optional ? path.slice(1) : path;
  if (!existsSync(file)) {
    if (optional) return [];
    fail(`EnvironmentFile ${file} does not exist`);
  }
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#') && l.includes('='));
}

const pidFile = (unit) => join(stateDir, `${unit}.pid`);
const alive = (pid) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

function start(unit) {
  if (existsSync(pidFile(unit)) && alive(Number(readFileSync(pidFile(unit), 'utf8')))) return;
  const { service, environment } = readUnit(unit);
  const env = { PATH: SYSTEMD_PATH };
  const assignments = [...environment, ...(service.EnvironmentFile ? readEnvironmentFile(service.EnvironmentFile) : [])];
  for (const a of assignments) env[a.slice(0, a.indexOf('='))] = a.slice(a.indexOf('=') + 1);
  const [command, ...args] = (service.ExecStart ?? fail(`${unit} has no ExecStart`)).split(/\s+/);
  const journal = openSync(join(stateDir, `${unit}.journal`), 'a');
  const child = spawn(command, args, { env, cwd: service.WorkingDirectory ?? '/', detached: true, stdio: ['ignore', journal, journal] });
  child.unref();
  writeFileSync(pidFile(unit), String(child.pid));
}

async function stop(unit) {
  if (!existsSync(pidFile(unit))) return;
  const pid = Number(readFileSync(pidFile(unit), 'utf8'));
  const { service } = readUnit(unit);
  const signal = service.KillSignal ?? 'SIGTERM';
  const timeoutS = Number((service.TimeoutStopSec ?? '90').replace(/s$/, ''));
  try {
    process.kill(pid, signal);
  } catch {
    /* gone already */
  }
  const deadline = Date.now() + timeoutS * 1000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(pidFile(unit), { force: true });
}

const [verb, ...rest] = process.argv.slice(2);
const units = rest.filter((a) => !a.startsWith('--'));
if (!unitDir || !stateDir) fail('SYSTEMCTL_UNIT_DIR and SYSTEMCTL_STATE_DIR must be set');
switch (verb) {
  case 'daemon-reload':
    break;
  case 'enable':
    for (const u of units) readUnit(u);
    if (rest.includes('--now')) units.forEach(start);
    break;
  case 'start':
    units.forEach(start);
    break;
  case 'stop':
    for (const u of units) await stop(u);
    break;
  case 'is-active': {
    const up = units.every((u) => existsSync(pidFile(u)) && alive(Number(readFileSync(pidFile(u), 'utf8'))));
    process.stdout.write(`${up ? 'active' : 'inactive'}\n`);
    process.exit(up ? 0 : 3);
    break;
  }
  default:
    fail(`'${verb}' is not something the runbook does`);
}
