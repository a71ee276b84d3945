// A real S3 endpoint for tests: moto_server (S3 wire protocol) on a loopback port, never an in-process fake.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort, repoRoot } from './helpers';
import { listening } from '../workers/dev-server';

/** A running moto server and the environment that points ttd at it. */
export interface Moto {
  port: number;
  env: Record<string, string>;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
  /** Starts it again on the same port (its content is gone: moto keeps everything in memory). */
  restart(): Promise<void>;
}

/** Starts moto_server from the project's .venv on a free loopback port. */
export async function startMoto(): Promise<Moto> {
  const port = await freePort();
  let child: ChildProcess;
  const launch = async () => {
    child = spawn(join(repoRoot, '.venv', 'bin', 'moto_server'), ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    for (let i = 0; i < 200 && !(await listening(port)); i++) await new Promise((r) => setTimeout(r, 50));
  };
  await launch();
  const env = {
    AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'testing-key-id',
    AWS_SECRET_ACCESS_KEY: 'testing-secret-never-logged',
  };
  return {
    port,
    env,
    async createBucket(name) {
      const client = new S3Client({
        endpoint: env.AWS_ENDPOINT_URL,
        region: env.AWS_REGION,
        forcePathStyle: true,
        credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
      });
      await client.send(new CreateBucketCommand({ Bucket: name }));
      client.destroy();
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
    async restart() {
      await launch();
    },
  };
}
