// A loopback TCP proxy that a test can take down and bring back: an S3 endpoint outage without losing moto's data.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { freePort } from './helpers';

/** The proxy's port, and switches for the outage. */
export interface Proxy {
  port: number;
  down(): Promise<void>;
  up(): Promise<void>;
}

/** Forwards 127.0.0.1:<port> to 127.0.0.1:<targetPort>. */
export async function startProxy(targetPort: number): Promise<Proxy> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const up = () =>
    new Promise<void>((resolve) => {
      server = createServer((client) => {
        const upstream = connect({ host: '127.0.0.1', port: targetPort });
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
    async down() {
      await new Promise<void>((resolve) => {
        server?.close(() => resolve());
        for (const s of sockets) s.destroy(); // cut uploads in flight
      });
    },
  };
}
