import { createHash } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Type } from '@sinclair/typebox';
import { createCodec, parseJson } from '../../protocol/index.ts';
import type { ResumeData } from '../chunk-store.ts';

/**
 * The state file beside `OUT.part`: which chunks are verified (for which manifest) and
 * the session to resume. Its own SHA-256 detects a torn or edited file; it is replaced
 * atomically (tmp + fsync + rename + directory fsync), always after the data it describes.
 */
const STATE_VERSION = 1;

const ResumeDataSchema = Type.Object({
  session_id: Type.String(),
  session_token: Type.String(),
  server_url: Type.String(),
  file_id: Type.String(),
  manifest_url: Type.String(),
  tracker_url: Type.String(),
  info_hash: Type.String(),
});

const StateBodySchema = Type.Object({
  v: Type.Literal(STATE_VERSION),
  info_hash: Type.Optional(Type.String({ pattern: '^[0-9a-f]{40}$' })),
  size: Type.Optional(Type.Integer({ minimum: 0 })),
  chunk_size: Type.Optional(Type.Integer({ minimum: 1 })),
  have: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]*$' })),
  resume: Type.Optional(ResumeDataSchema),
});
export type StateBody = {
  v: 1;
  info_hash?: string;
  size?: number;
  chunk_size?: number;
  have?: string;
  resume?: ResumeData;
};
const stateFileCodec = createCodec(Type.Object({ body: StateBodySchema, sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }) }));

export type StateRead =
  | { kind: 'missing' }
  | { kind: 'valid'; body: StateBody }
  /** Unreadable, torn, or its checksum does not match: nothing in it can be trusted. */
  | { kind: 'corrupt'; reason: string };

function checksum(body: StateBody): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

export async function readStateFile(path: string): Promise<StateRead> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'corrupt', reason: `unreadable: ${(error as Error).message}` };
  }
  const parsed = parseJson(text);
  if (!parsed.ok) return { kind: 'corrupt', reason: 'not JSON (torn write?)' };
  const decoded = stateFileCodec.decode(parsed.value);
  if (!decoded.ok) return { kind: 'corrupt', reason: `bad shape: ${decoded.errors[0] ?? ''}` };
  const body: StateBody = decoded.value.body;
  if (checksum(body) !== decoded.value.sha256) return { kind: 'corrupt', reason: 'checksum mismatch' };
  return { kind: 'valid', body };
}

/** Replace the state file atomically and durably. */
export async function writeStateFile(path: string, body: StateBody): Promise<void> {
  const tmpPath = `${path}.tmp`;
  const text = JSON.stringify({ body, sha256: checksum(body) });
  const handle = await open(tmpPath, 'w');
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmpPath, path);
  await syncDirectory(dirname(path));
}

export async function removeStateFile(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
  await unlink(`${path}.tmp`).catch(() => undefined);
}

/** fsync the directory so a rename survives a crash (a no-op where unsupported). */
export async function syncDirectory(path: string): Promise<void> {
  try {
    const handle = await open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some platforms cannot fsync a directory; the rename is still atomic.
  }
}
