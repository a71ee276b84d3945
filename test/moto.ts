// A real S3 endpoint for tests: moto_server (S3 wire protocol) on a loopback port, never an in-process fake.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort, mustRun, repoRoot } from './helpers';
import { S3ObjectStore } from '../lib/store/s3-store';
import { listening } from '../temporal/dev-server';

/** An access key of an IAM user moto made. */
export interface AccessKey {
  accessKeyId: string;
  secretAccessKey: string;
}

/** How to start moto. */
export interface MotoOptions {
  /** Enforce IAM: these users (name → policy document, or null for a user with no policy) are made first, each with
   * one access key; from then on moto checks every request's signature and the policies of the key's user. `env`
   * then holds the key of an extra user allowed everything, for set-up and for looking at the bucket. */
  iam?: { users: Record<string, object | null> };
}

/** A running moto server and the environment that points ttd at it. */
export interface Moto {
  port: number;
  env: Record<string, string>;
  /** With `iam`: each user's access key, by name. */
  keys: Record<string, AccessKey>;
  createBucket(name: string): Promise<void>;
  /** An S3 client of this moto, signed with `key` (default: the key of `env`); the caller destroys it. */
  client(key?: AccessKey): S3Client;
  /** ttd's S3 store on `bucket`/`prefix` of this moto, as ttd opens it from `env`. */
  store(bucket: string, prefix: string): S3ObjectStore;
  stop(): Promise<void>;
  /** Starts it again on the same port (its content is gone: moto keeps everything in memory). */
  restart(): Promise<void>;
}

// The user `env` signs as in IAM mode: allowed every action on every resource.
const ADMIN = 'moto-admin';
const ADMIN_POLICY = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };

// Makes the users with boto3 (moto's own dependency, in .venv): CreateUser, CreatePolicy and AttachUserPolicy when
// there is a policy, CreateAccessKey. Prints {name: {accessKeyId, secretAccessKey}}.
const MAKE_USERS = `
import json, sys, boto3
spec = json.load(sys.stdin)
iam = boto3.client('iam', endpoint_url=spec['endpoint'], region_name='us-east-1',
                   aws_access_key_id='setup', aws_secret_access_key='setup')
out = {}
for name, policy in spec['users'].items():
    iam.create_user(UserName=name)
    if policy is not None:
        arn = iam.create_policy(PolicyName=name + '-policy', PolicyDocument=json.dumps(policy))['Policy']['Arn']
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)['AccessKey']
    out[name] = {'accessKeyId': key['AccessKeyId'], 'secretAccessKey': key['SecretAccessKey']}
print(json.dumps(out))
`;

/** Starts moto_server from the project's .venv on a free loopback port. */
export async function startMoto(options: MotoOptions = {}): Promise<Moto> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const users = options.iam ? { [ADMIN]: ADMIN_POLICY, ...options.iam.users } : {};
  // moto answers this many requests without checking them, then enforces IAM: exactly the calls that make the users.
  const setupCalls = Object.values(users).reduce<number>((n, policy) => n + (policy ? 4 : 2), 0);
  let child: ChildProcess;
  const launch = async () => {
    const args = ['-H', '127.0.0.1', '-p', String(port)];
    child = options.iam
      ? // moto_server with its signature check fixed for queries holding a '/' (test/moto-server.py says why).
        spawn(join(repoRoot, '.venv', 'bin', 'python'), [join(repoRoot, 'test', 'moto-server.py'), ...args], {
          stdio: 'ignore',
          env: { ...process.env, INITIAL_NO_AUTH_ACTION_COUNT: String(setupCalls) },
        })
      : spawn(join(repoRoot, '.venv', 'bin', 'moto_server'), args, { stdio: 'ignore' });
    for (let i = 0; i < 200 && !(await listening(port)); i++) await new Promise((r) => setTimeout(r, 50));
  };
  await launch();
  const keys: Record<string, AccessKey> = options.iam
    ? JSON.parse(
        await mustRun(join(repoRoot, '.venv', 'bin', 'python'), ['-c', MAKE_USERS], { input: JSON.stringify({ endpoint, users }) }),
      )
    : {};
  const admin = keys[ADMIN];
  const env = {
    AWS_ENDPOINT_URL: endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: admin?.accessKeyId ?? 'testing-key-id',
    AWS_SECRET_ACCESS_KEY: admin?.secretAccessKey ?? 'testing-secret-never-logged',
  };
  const envKey = () => ({ accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY });
  const client = (key: AccessKey, maxAttempts?: number) =>
    new S3Client({ endpoint, region: env.AWS_REGION, forcePathStyle: true, credentials: key, maxAttempts });
  if (options.iam) {
    // The set-up used up the unchecked calls: a key moto never issued must now be refused, or nothing here is enforced.
    const stranger = client({ accessKeyId: 'AKIANOTAUSEROFMOTO00', secretAccessKey: 'none' }, 1);
    const refused = await stranger.send(new ListBucketsCommand({})).then(
      () => false,
      (err) => err?.$metadata?.httpStatusCode === 403,
    );
    stranger.destroy();
    if (!refused) throw new Error(`moto on ${endpoint} answered a request signed by an unknown key: IAM is not enforced`);
  }
  return {
    port,
    env,
    keys,
    async createBucket(name) {
      const s3 = client(envKey());
      await s3.send(new CreateBucketCommand({ Bucket: name }));
      s3.destroy();
    },
    client(key = envKey()) {
      return client(key);
    },
    store(bucket, prefix) {
      // The store reads the endpoint and region from the environment when it is made, as in ttd.
      const saved = { ...process.env };
      Object.assign(process.env, env);
      try {
        return new S3ObjectStore(bucket, prefix, { credentials: envKey() });
      } finally {
        process.env = saved;
      }
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
    async restart() {
      if (options.iam) throw new Error('a moto that enforces IAM cannot be restarted: its users and keys would be gone');
      await launch();
    },
  };
}
