// A store's identity: a random id written once into the store (`ttd-store.json`) by its first writer, create-only.
// Task queues are named after it (temporal/queues.ts), so a worker of one store never takes a task of a run of another.
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ErrorCode, TtdError } from '../contract/errors';
import { parseStored, type ObjectStore } from './store';

/** The key of the identity object, at the store's root. */
export const STORE_IDENTITY_KEY = 'ttd-store.json';

const IdentitySchema = z.object({
  id: z.string().regex(/^[0-9a-f]{16}$/),
  created: z.string(),
});

/** What `ttd-store.json` holds: the id, and when the first writer made it. */
export type StoreIdentity = z.infer<typeof IdentitySchema>;

/** The store's identity, created on first use. Two processes creating it at once agree: the create-only write lets
 * one of them win, and the other reads what the winner wrote. */
export async function storeIdentity(store: ObjectStore): Promise<StoreIdentity> {
  const existing = await readIdentity(store);
  if (existing) return existing;
  const fresh = freshIdentity();
  try {
    await store.put(STORE_IDENTITY_KEY, identityBytes(fresh), { ifNoneMatch: '*' });
    return fresh;
  } catch (err) {
    if ((err as TtdError).code !== ErrorCode.preconditionFailed) throw err;
  }
  const winner = await readIdentity(store);
  if (!winner) throw new Error(`${STORE_IDENTITY_KEY} in ${store.location} was created by another writer, then disappeared`);
  return winner;
}

/** The identity if the store has one; a damaged one is a store_damaged error (guessing a new id would move every
 * open run's task queues out from under it). */
export async function readIdentity(store: ObjectStore): Promise<StoreIdentity | undefined> {
  const obj = await store.get(STORE_IDENTITY_KEY);
  if (!obj) return undefined;
  return parseStored(
    obj.body,
    IdentitySchema,
    () =>
      new TtdError(
        ErrorCode.storeDamaged,
        `the store identity ${STORE_IDENTITY_KEY} in ${store.location} is damaged (expected {"id": 16 hex digits, "created": a time}, got ${JSON.stringify(obj.body.toString('utf8').slice(0, 80))}); restore it from a backup or an earlier version of the bucket: its id names the task queues of every open run`,
        { key: STORE_IDENTITY_KEY },
      ),
  );
}

/** Proves that this process may write the store, changing nothing: a create-only write of a fresh identity, which
 * a writer wins on first use or loses with a precondition failure (an existing identity is never replaced, so there
 * is nothing to read first). A store that refuses writes (read-only credentials: store_access_denied) fails here,
 * before a run starts, rather than at its first new object, which may come only in the middle of training, or never
 * when every input is already stored. */
export async function assertWritable(store: ObjectStore): Promise<void> {
  try {
    await store.put(STORE_IDENTITY_KEY, identityBytes(freshIdentity()), { ifNoneMatch: '*' });
  } catch (err) {
    if ((err as TtdError).code !== ErrorCode.preconditionFailed) throw err;
  }
}

function freshIdentity(): StoreIdentity {
  return { id: randomBytes(8).toString('hex'), created: new Date().toISOString() };
}

function identityBytes(identity: StoreIdentity): Buffer {
  return Buffer.from(`${JSON.stringify(identity, null, 2)}\n`);
}
