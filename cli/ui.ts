// `ttd ui [--port N] [--host H] [--allow-host NAME]...`: a small read-only dashboard of the registry, the audit log
// and recent runs. Plain node:http: a handful of GET routes rendering server-side HTML (render/ui-html.ts); nothing is
// ever written. It answers only requests addressed to it (lib/allowed-hosts.ts) and sends a strict CSP.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Client } from '@temporalio/client';
import { allowedHostArgument, hostAllowed, hostOf, isLoopback } from '../lib/allowed-hosts';
import { readAudit, verifyTrail } from '../lib/registry/audit';
import { auditReader } from '../lib/registry/keys';
import { openStore } from '../lib/config';
import { loadTemporalConfig, type TemporalConfig } from '../temporal/config';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { GateCode } from '../lib/contract/gate-codes';
import { listModels, readModel, resolveRef } from '../lib/registry/registry';
import { loadModelCard } from '../lib/registry/model-card';
import { assertName } from '../lib/registry/names';
import { DASHBOARD_POLICY } from '../render/html';
import { renderReport } from '../render/report-html';
import { formatsOf, readManifest, readVersionRecord, type VersionRecord } from '../lib/registry/records';
import type { ObjectStore } from '../lib/store/store';
import {
  auditPage,
  cardPage,
  errorPage,
  modelPage,
  modelsPage,
  paths,
  runsPage,
  type ModelSummary,
  type VersionRow,
} from '../render/ui-html';
import { failWith, writeErr, writeOut } from './output';
import { reportForRun, reportFromStore } from './report-data';
import { withOptionalClient } from './report-commands';
import { listRuns } from './run-commands';

const DEFAULT_PORT = 8780;
const RUNS_SHOWN = 50;

/** What the dashboard reads: the store always, Temporal when it is reachable (recent runs, run reports). */
export interface UiSources {
  config: TemporalConfig;
  store: ObjectStore;
  client: Client | undefined;
}

/** Which Host headers the dashboard answers besides IP addresses and `localhost`: the host it is bound to and the
 * names given with --allow-host. */
export interface HostPolicy {
  bound: string;
  allowed: readonly string[];
}

/** Headers of every response: no caching, no sniffing, no referrer, no framing, nothing loaded or run but our CSS. */
const SECURITY_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy': DASHBOARD_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-resource-policy': 'same-origin',
} as const;

/** The fields of a version record the versions table shows. */
type RecordFacts = Pick<VersionRecord, 'actor' | 'trigger' | 'commit' | 'kept'> & { formats: string[] };

/** Builds the request handler (exported for tests that serve it on their own port). */
export function uiHandler(
  src: UiSources,
  hosts: HostPolicy = { bound: '127.0.0.1', allowed: [] },
): (req: IncomingMessage, res: ServerResponse) => void {
  const records = new Map<string, RecordFacts>(); // version records are immutable blobs: read each once
  const facts = async (digest: string): Promise<RecordFacts> => {
    let r = records.get(digest);
    if (!r) {
      const record = await readVersionRecord(src.store, digest);
      r = { ...record, formats: Object.keys(formatsOf(await readManifest(src.store, record.manifest))) };
      records.set(digest, r);
    }
    return r;
  };

  const routes: [RegExp, (m: string[]) => Promise<string>][] = [
    [/^\/$/, async () => modelsPage(await summaries(src.store))],
    [
      /^\/models\/([^/]+)$/,
      async ([name]) => {
        const state = (await readModel(src.store, name))?.state;
        if (!state) throw new TtdError(ErrorCode.modelNotFound, `model '${name}' is not registered in ${src.store.location}`);
        const versions: VersionRow[] = [];
        for (const v of [...state.versions].reverse()) {
          const f = await facts(v.record);
          const aliases = Object.entries(state.aliases)
            .filter(([, a]) => a.version === v.version)
            .map(([alias]) => alias);
          const status = aliases.length
            ? aliases.join(', ')
            : f.kept === GateCode.notBetterThanProduction
              ? 'kept (not better than production)'
              : 'registered';
          versions.push({
            version: v.version,
            digest: v.digest,
            status,
            aliases,
            createdAt: v.createdAt,
            runId: v.runId,
            trigger: f.trigger,
            commit: f.commit,
            actor: f.actor,
            formats: f.formats,
          });
        }
        return modelPage({ name, versions, aliases: state.aliases, aliasHistory: [...state.aliasHistory].reverse() });
      },
    ],
    [
      /^\/models\/([^/]+)\/versions\/(\d+)\/report$/,
      async ([name, version]) =>
        renderReport(await reportFromStore(src.store, src.config, name, Number(version)), {
          cardHref: paths.versionCard(name, Number(version)),
        }),
    ],
    [
      /^\/models\/([^/]+)\/versions\/(\d+)\/card$/,
      async ([name, version]) => {
        const { state, version: v } = await resolveRef(src.store, { model: assertName('model', name), version: Number(version) });
        return cardPage(await loadModelCard(src.store, state, v, auditReader(src.config.keysDir)));
      },
    ],
    [
      /^\/models\/([^/]+)\/audit$/,
      async ([name]) =>
        auditPage(
          name,
          [...(await readAudit(src.store, name))].reverse(),
          await verifyTrail(src.store, name, auditReader(src.config.keysDir)),
        ),
    ],
    [
      /^\/runs$/,
      async () => {
        if (!src.client) return runsPage(null);
        const runs = await listRuns(src.client, { limit: RUNS_SHOWN });
        return runsPage(runs.map((r) => ({ ...r, status: r.outcome ?? r.status })));
      },
    ],
    [
      /^\/runs\/([^/]+)\/report$/,
      async ([runId]) => {
        const data = await reportForRun(src.client, src.store, src.config, runId);
        return renderReport(data, data.card ? { cardHref: paths.versionCard(data.card.model, data.card.version) } : {});
      },
    ],
  ];

  return (req, res) => {
    const send = (status: number, html: string) => {
      res.writeHead(status, SECURITY_HEADERS);
      res.end(req.method === 'HEAD' ? undefined : html);
    };
    // Checked before anything else: a page on another site reaching us through a rebound name gets nothing.
    if (!hostAllowed(req.headers.host, hosts.bound, hosts.allowed)) return send(403, errorPage(403, refusedHost(req.headers.host, hosts)));
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(405, errorPage(405, `${req.method} is not allowed: the dashboard is read-only`));
    }
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    for (const [re, render] of routes) {
      const m = re.exec(path);
      if (!m) continue;
      let args: string[];
      try {
        args = m.slice(1).map((s) => decodeURIComponent(s));
      } catch {
        return send(400, errorPage(400, `malformed path '${path}'`));
      }
      render(args).then(
        (html) => send(200, html),
        (err) => {
          const code = (err as TtdError).code;
          const notFound = (
            [ErrorCode.modelNotFound, ErrorCode.versionNotFound, ErrorCode.runNotFound, ErrorCode.invalidName] as string[]
          ).includes(code);
          send(notFound ? 404 : 500, errorPage(notFound ? 404 : 500, (err as Error).message));
        },
      );
      return;
    }
    send(404, errorPage(404, `no page at '${path}'`));
  };
}

function refusedHost(header: string | undefined, hosts: HostPolicy): string {
  const names = ['localhost', 'IP addresses', ...(isLoopback(hosts.bound) ? [] : [hosts.bound]), ...hosts.allowed];
  const host = hostOf(header);
  return `${header === undefined ? 'a request without a Host header' : `Host ${JSON.stringify(header)}`} is not one this dashboard answers to; expected ${names.join(', ')}. A page on another site can reach a dashboard through a name it points at this machine (DNS rebinding), so other names are refused${host ? `; if you opened it as '${host}' yourself, restart it with --allow-host ${host}` : ''}`;
}

async function summaries(store: ObjectStore): Promise<ModelSummary[]> {
  const out: ModelSummary[] = [];
  for (const name of await listModels(store)) {
    const state = (await readModel(store, name))?.state;
    if (!state) continue;
    const latest = state.versions[state.versions.length - 1];
    const moves = state.aliasHistory.map((m) => m.at);
    out.push({
      name,
      versions: state.versions.length,
      latestVersion: latest?.version ?? null,
      aliases: Object.fromEntries(Object.entries(state.aliases).map(([a, v]) => [a, v.version])),
      updatedAt: [latest?.createdAt, ...moves].filter(Boolean).sort().pop() ?? null,
    });
  }
  return out;
}

/** Starts the dashboard on host:port; resolves once it listens. */
export function serveUi(src: UiSources, host: string, port: number, allowed: readonly string[] = []): Promise<Server> {
  const server = createServer(uiHandler(src, { bound: host, allowed }));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

/** `ttd ui [--port N] [--host H] [--allow-host NAME]...`: serves until interrupted. The port is bound before Temporal is
 * reached (which may start the embedded server over $TTD_HOME): a port or host it cannot use leaves nothing behind. */
export async function uiCommand(opts: { port?: string; host?: string; allowHost?: string[] }): Promise<void> {
  try {
    const port = opts.port === undefined ? DEFAULT_PORT : Number(opts.port);
    if (!/^\d{1,5}$/.test(opts.port ?? String(DEFAULT_PORT)) || port > 65535) {
      throw new TtdError(ErrorCode.portInvalid, `--port '${opts.port}': expected an integer from 0 to 65535`, {
        flag: '--port',
        value: opts.port,
      });
    }
    const host = opts.host ?? '127.0.0.1';
    if (!host.trim() || host !== host.trim()) {
      throw new TtdError(
        ErrorCode.argumentInvalid,
        `--host '${host}' is not an address; expected an IP address or host name of this machine (e.g. --host 127.0.0.1, or 0.0.0.0 for every interface)`,
        { flag: '--host', value: host },
      );
    }
    const allowed = (opts.allowHost ?? []).map(allowedHostArgument);
    const config = loadTemporalConfig();
    const store = openStore(config);
    const src: UiSources = { config, store, client: undefined };
    let server: Server;
    try {
      server = await serveUi(src, host, port, allowed);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const hostFault = e.code === 'ENOTFOUND' || e.code === 'EADDRNOTAVAIL' || e.code === 'EAI_AGAIN';
      const message = `cannot listen on ${host}:${port}: ${e.code ?? e.message}${
        e.code === 'EADDRINUSE'
          ? ' (in use; pick another with --port)'
          : hostFault
            ? `; expected for --host an address of this machine (e.g. 127.0.0.1, or 0.0.0.0 for every interface)`
            : ''
      }`;
      if (hostFault) throw new TtdError(ErrorCode.argumentInvalid, message, { flag: '--host', value: host });
      throw new TtdError(ErrorCode.portInvalid, message);
    }
    await withOptionalClient(config, async (client) => {
      src.client = client;
      const addr = server.address();
      const shown = typeof addr === 'object' && addr ? `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}/` : String(addr);
      if (!isLoopback(host)) {
        const where = host === '0.0.0.0' || host === '::' ? `every network interface (${host})` : `${host}, beyond this machine`;
        writeErr(
          `ttd ui: warning: listening on ${where}: anyone who can reach port ${typeof addr === 'object' && addr ? addr.port : port} can read every model, version, audit record and run report; there is no login. Use --host 127.0.0.1 unless that is what you want\n`,
        );
      }
      writeOut(`ttd ui: ${shown} (read-only; store ${store.location}${client ? '' : '; Temporal not reachable'})\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          server.close(() => resolve());
          server.closeAllConnections();
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
  } catch (err) {
    failWith(err, false);
  }
}
