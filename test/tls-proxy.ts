// Debian's nginx as a gRPC TLS front for the suite's Temporal server: one endpoint that demands a client certificate
// signed by a test CA (mutual TLS), one that demands `authorization: Bearer KEY` (an API key), both on loopback.
import { spawn, type ChildProcess } from 'node:child_process';
// eslint-disable-next-line @typescript-eslint/no-restricted-imports -- openssl makes a key in milliseconds
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from './helpers';

/** The files a test CA hands out: PEM paths. */
export interface TestPki {
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate and key from another CA, which the endpoint must not trust. */
  strangerCert: string;
  strangerKey: string;
}

/** The two endpoints, the name their certificate holds, and how to stop them. */
export interface TlsProxy {
  mtlsAddress: string;
  apiKeyAddress: string;
  serverName: string;
  apiKey: string;
  pki: TestPki;
  /** nginx's access log so far: one line per gRPC call, `PORT STATUS client=SUBJECT`. */
  accessLog(): string;
  stop(): Promise<void>;
}

const SERVER_NAME = 'temporal.ttd.test';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, a server certificate for SERVER_NAME and 127.0.0.1, a client certificate, and a stranger's client
 * certificate from a second CA, made with openssl in `dir`. */
export function makeTestPki(dir: string): TestPki {
  mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = (name: string) =>
    openssl(['req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`], dir);
  const leaf = (name: string, caName: string, ext: string) => {
    openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(
      ['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`, '-CAcreateserial'].concat([
        '-out',
        `${name}.crt`,
        '-days',
        '2',
        '-extfile',
        `${name}.ext`,
      ]),
      dir,
    );
  };
  ca('test-ca');
  ca('stranger-ca');
  leaf('server', 'test-ca', `subjectAltName=DNS:${SERVER_NAME},IP:127.0.0.1\nextendedKeyUsage=serverAuth\n`);
  leaf('client', 'test-ca', 'extendedKeyUsage=clientAuth\n');
  leaf('stranger', 'stranger-ca', 'extendedKeyUsage=clientAuth\n');
  const p = (f: string) => join(dir, f);
  return {
    caCert: p('test-ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    strangerCert: p('stranger.crt'),
    strangerKey: p('stranger.key'),
  };
}

/** Starts nginx (foreground, its own config and prefix in `dir`) in front of `temporalAddress`. */
export async function startTlsProxy(dir: string, temporalAddress: string, apiKey: string): Promise<TlsProxy> {
  const pki = makeTestPki(join(dir, 'pki'));
  const [mtlsPort, keyPort] = [await freePort(), await freePort()];
  mkdirSync(join(dir, 'logs'), { recursive: true });
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const common = `
    ssl_certificate ${pki.serverCert};
    ssl_certificate_key ${pki.serverKey};
    # Long polls wait up to about 70 s on the server; payloads stay small but the default 1 MB is not ours to pick.
    grpc_read_timeout 300s;
    grpc_send_timeout 300s;
    client_max_body_size 0;`;
  const conf = `
daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} info;
events { worker_connections 256; }
http {
  # Which endpoint, the answer, and the client certificate's subject: what tests read to see traffic went through.
  log_format ttd '$server_port $status client=$ssl_client_s_dn';
  access_log ${join(dir, 'logs', 'access.log')} ttd;
  client_body_temp_path ${join(dir, 'tmp', 'body')};
  proxy_temp_path ${join(dir, 'tmp', 'proxy')};
  fastcgi_temp_path ${join(dir, 'tmp', 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp', 'uwsgi')};
  scgi_temp_path ${join(dir, 'tmp', 'scgi')};
  server {
    listen 127.0.0.1:${mtlsPort} ssl http2;
    ${common}
    ssl_client_certificate ${pki.caCert};
    ssl_verify_client on;
    location / { grpc_pass grpc://${temporalAddress}; }
  }
  server {
    listen 127.0.0.1:${keyPort} ssl http2;
    ${common}
    location / {
      if ($http_authorization != "Bearer ${apiKey}") { return 401; }
      grpc_pass grpc://${temporalAddress};
    }
  }
}
`;
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const child: ChildProcess = spawn('nginx', ['-c', confPath, '-p', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  child.on('error', (err) => (stderr += `cannot run nginx (${err.message}): make setup installs nginx-light`));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  // nginx outlives a test process that dies without its afterAll; this takes it down with the process.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  for (const port of [mtlsPort, keyPort]) {
    const deadline = Date.now() + 10_000;
    while (!(await listening(port))) {
      if (child.exitCode !== null || stderr.includes('cannot run nginx') || Date.now() > deadline) {
        child.kill('SIGKILL');
        const log = existsSync(join(dir, 'logs', 'error.log')) ? readFileSync(join(dir, 'logs', 'error.log'), 'utf8').slice(-2000) : '';
        throw new Error(`nginx did not start (${stderr.trim()}): ${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    mtlsAddress: `127.0.0.1:${mtlsPort}`,
    apiKeyAddress: `127.0.0.1:${keyPort}`,
    serverName: SERVER_NAME,
    apiKey,
    pki,
    accessLog: () => readFileSync(join(dir, 'logs', 'access.log'), 'utf8'),
    stop: async () => {
      process.removeListener('exit', killOnExit);
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}
