import { createHash } from 'node:crypto';
import { open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Type } from '@sinclair/typebox';
import { createCodec, parseJson } from '../../protocol/index.ts';
import type { ResumeData } from '../chunk-store.ts';

/**
 * The state file beside `OUT.part`: which chunks are verified (for which manifest) and
 * the session to resume. Its own SHA-256 detects a torn or edited file; it is replaced
 * atomically (tmp + rename), always after the data it describes is written. `boot_id` says
 * which boot of the machine wrote it without fsync (see file-chunk-store.ts); without one,
 * the data and the state were fsynced.
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
  boot_id: Type.Optional(Type.String({ maxLength: 64 })),
  part_id: Type.Optional(Type.String({ maxLength: 40 })),
  resume: Type.Optional(ResumeDataSchema),
});
export type StateBody = {
  v: 1;
  info_hash?: string;
  size?: number;
  chunk_size?: number;
  have?: string;
  boot_id?: string;
  part_id?: string | undefined;
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

/**
 * Replace the state file atomically; with `durable`, also fsync it and its directory. Without,
 * the replace is still atomic for every reader on this boot of the machine (a killed process
 * loses nothing the kernel accepted), which is what `boot_id` records. A failed write leaves
 * the old state in place. The new state is written into a spare `.tmp` made after the last
 * replace, in the blocks the old state gave back: on a full disk (where a chunk write has just
 * failed) the state that records the chunks written so far still fits.
 */
export async function writeStateFile(path: string, body: StateBody, durable = true): Promise<void> {
  const tmpPath = `${path}.tmp`;
  const text = Buffer.from(JSON.stringify({ body, sha256: checksum(body) }), 'utf8');
  const handle = await open(tmpPath, 'r+').catch(() => open(tmpPath, 'w'));
  try {
    await handle.write(text, 0, text.length, 0);
    await handle.truncate(text.length);
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmpPath, path);
  if (durable) await syncDirectory(dirname(path));
  await writeFile(tmpPath, new Uint8Array(Math.max(SPARE_BYTES, 2 * text.length))).catch(() => undefined);
}

/** Size of the spare state file: a state is well under this (a bitfield of a few thousand chunks, a session). */
const SPARE_BYTES = 4096;

/**
 * This boot of the machine (Linux), or undefined where the kernel does not say. Page-cache
 * writes survive a killed process but not a crash of the machine; a state written without
 * fsync is trusted only on the boot that wrote it.
 */
export async function currentBootId(): Promise<string | undefined> {
  const text = await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => undefined);
  const id = text?.trim();
  return id && /^[0-9a-f-]{8,64}$/.test(id) ? id : undefined;
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
