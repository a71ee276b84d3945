// A loopback TCP proxy that a test can take down and bring back: an S3 endpoint outage without losing moto's data.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { freePort } from './helpers';

/** The proxy's port, and switches for the outage. */
export interface Proxy {
  port: number;
  down(): Promise<void>;
  up(): Promise<void>;
  /** From now on nothing passes either way, and nothing fails: every request in flight or to come hangs (a host whose
   * store I/O stalls, for as long as the test needs). */
  stall(): void;
}

/** Forwards 127.0.0.1:<port> to 127.0.0.1:<targetPort>. */
export async function startProxy(targetPort: number): Promise<Proxy> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let stalled = false;
  const pairs = new Set<[Socket, Socket]>();
  const up = () =>
    new Promise<void>((resolve) => {
      server = createServer((client) => {
        sockets.add(client);
        client.on('close', () => sockets.delete(client));
        client.on('error', () => client.destroy());
        if (stalled) return; // held open, never answered
        const upstream = connect({ host: '127.0.0.1', port: targetPort });
        const pair: [Socket, Socket] = [client, upstream];
        pairs.add(pair);
        client.on('close', () => pairs.delete(pair));
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => s.destroy());
        }
        client.pipe(upstream).pipe(client);
      });
      server.listen(port, '127.0.0.1', () => resolve());
    });
  await up();
  return {
    port,
    up,
    stall() {
      stalled = true;
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    async down() {
      await new Promise<void>((resolve) => {
        server?.close(() => resolve());
        for (const s of sockets) s.destroy(); // cut uploads in flight
      });
    },
  };
}
