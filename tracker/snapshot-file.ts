import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { createCodec, parseJson } from '../protocol/index.ts';

/**
 * Crash-safe snapshot files: write to a temp file, fsync, rename over the old one, fsync
 * the directory. The body is wrapped with its SHA-256 so a torn or edited file is caught
 * on load instead of being trusted.
 */
const SnapshotEnvelopeSchema = Type.Object({
  v: Type.Literal(1),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  body: Type.String(),
});
const envelopeCodec = createCodec(SnapshotEnvelopeSchema);

export type SnapshotRead = { status: 'missing' } | { status: 'ok'; body: unknown } | { status: 'corrupt'; reason: string };

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export async function writeSnapshotFile(path: string, body: unknown): Promise<void> {
  const bodyText = JSON.stringify(body);
  const text = JSON.stringify({ v: 1, sha256: sha256Hex(bodyText), body: bodyText });
  const tempPath = `${path}.tmp-${process.pid}`;
  const handle = await open(tempPath, 'w', 0o600);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tempPath, path);
  } catch (error) {
    await unlink(tempPath).catch(() => undefined);
    throw error;
  }
  // The rename is durable only once the directory entry is.
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export async function readSnapshotFile(path: string): Promise<SnapshotRead> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'missing' };
    return { status: 'corrupt', reason: `unreadable: ${(error as Error).message}` };
  }
  const parsed = parseJson(text);
  if (!parsed.ok) return { status: 'corrupt', reason: parsed.errors.join('; ') };
  const envelope = envelopeCodec.decode(parsed.value);
  if (!envelope.ok) return { status: 'corrupt', reason: `not a snapshot: ${envelope.errors.join('; ')}` };
  if (sha256Hex(envelope.value.body) !== envelope.value.sha256) return { status: 'corrupt', reason: 'checksum mismatch' };
  const body = parseJson(envelope.value.body);
  if (!body.ok) return { status: 'corrupt', reason: body.errors.join('; ') };
  return { status: 'ok', body: body.value };
}
