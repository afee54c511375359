import { createReadStream } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Type } from '@sinclair/typebox';
import { Sha256HexSchema, createCodec, parseJson } from '../../protocol/index.ts';

/**
 * Crash-safe snapshot files, written as a stream of records so that a million sessions never
 * become one string (V8 caps a string at ~512 MiB, and one JSON.stringify of them stalled the
 * loop for seconds). Layout, one JSON value per line:
 *
 *   {"v":2, ...header}
 *   record
 *   ...
 *   {"end":true,"count":N,"sha256":"<hex of every byte above this line>"}
 *
 * Written to a temp file, fsynced, renamed over the old one, directory fsynced. A torn or
 * edited file fails the trailer check on load instead of being trusted. Files of the older
 * layout (one `{"v":1,"sha256","body"}` envelope) are still read.
 */
const TrailerSchema = Type.Object({ end: Type.Literal(true), count: Type.Integer({ minimum: 0 }), sha256: Sha256HexSchema });
const trailerCodec = createCodec(TrailerSchema);
const HeaderSchema = Type.Object({ v: Type.Literal(2) });
const headerCodec = createCodec(HeaderSchema);
const LegacyEnvelopeSchema = Type.Object({ v: Type.Literal(1), sha256: Sha256HexSchema, body: Type.String() });
const legacyCodec = createCodec(LegacyEnvelopeSchema);
const LegacyBodySchema = Type.Object({ sessions: Type.Array(Type.Unknown()) });
const legacyBodyCodec = createCodec(LegacyBodySchema);

export type SnapshotRead =
  | { status: 'missing' }
  | { status: 'ok'; header: Record<string, unknown>; records: unknown[] }
  | { status: 'corrupt'; reason: string };

export interface SnapshotWriteOptions {
  /** The loop is given back after this much work in one go; default 2 ms. */
  sliceMs?: number;
  /** Bytes gathered before one write; default 256 KiB. */
  writeBytes?: number;
  now?: () => number;
}

/** Write `records` (each one JSON value) after `header`; returns how many were written. */
export async function writeSnapshotRecords(path: string, header: Record<string, unknown>, records: Iterable<unknown>, options: SnapshotWriteOptions = {}): Promise<number> {
  const sliceMs = options.sliceMs ?? 2;
  const writeBytes = options.writeBytes ?? 256 * 1024;
  const now = options.now ?? (() => performance.now());
  const tempPath = `${path}.tmp-${process.pid}`;
  const hash = createHash('sha256');
  const handle = await open(tempPath, 'w', 0o600);
  let count = 0;
  try {
    let pending: string[] = [];
    let pendingChars = 0;
    const flush = async () => {
      if (pending.length === 0) return;
      const text = pending.join('');
      pending = [];
      pendingChars = 0;
      hash.update(text);
      await handle.write(text);
    };
    const push = (line: string) => {
      pending.push(line);
      pendingChars += line.length;
    };
    push(`${JSON.stringify({ ...header, v: 2 })}\n`);
    let sliceStart = now();
    for (const record of records) {
      push(`${JSON.stringify(record)}\n`);
      count++;
      if (pendingChars >= writeBytes) {
        await flush();
        sliceStart = now();
      } else if ((count & 255) === 0 && now() - sliceStart >= sliceMs) {
        await yieldToLoop();
        sliceStart = now();
      }
    }
    await flush();
    await handle.write(`${JSON.stringify({ end: true, count, sha256: hash.digest('hex') })}\n`);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(tempPath).catch(() => undefined);
    throw error;
  }
  await handle.close();
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
  return count;
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export async function readSnapshotRecords(path: string): Promise<SnapshotRead> {
  const stream = createReadStream(path, { encoding: 'utf8' });
  const opened = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    stream.once('open', () => resolve(undefined));
    stream.once('error', (error: NodeJS.ErrnoException) => resolve(error));
  });
  if (opened) return opened.code === 'ENOENT' ? { status: 'missing' } : { status: 'corrupt', reason: `unreadable: ${opened.message}` };
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  const hash = createHash('sha256');
  const records: unknown[] = [];
  let header: Record<string, unknown> | undefined;
  let trailer: { count: number; sha256: string } | undefined;
  try {
    for await (const line of lines) {
      if (trailer) return { status: 'corrupt', reason: 'data after the trailer' };
      const parsed = parseJson(line);
      if (!parsed.ok) return { status: 'corrupt', reason: parsed.errors.join('; ') };
      if (header === undefined) {
        if (legacyCodec.is(parsed.value)) return readLegacy(parsed.value);
        if (!headerCodec.is(parsed.value)) return { status: 'corrupt', reason: 'not a snapshot: bad header' };
        header = parsed.value;
      } else if (trailerCodec.is(parsed.value)) {
        trailer = parsed.value;
        continue;
      } else {
        records.push(parsed.value);
      }
      hash.update(`${line}\n`);
    }
  } catch (error) {
    return { status: 'corrupt', reason: `unreadable: ${(error as Error).message}` };
  } finally {
    lines.close();
    stream.destroy();
  }
  if (!header) return { status: 'corrupt', reason: 'empty file' };
  if (!trailer) return { status: 'corrupt', reason: 'no trailer: the file is torn' };
  if (trailer.count !== records.length) return { status: 'corrupt', reason: `trailer counts ${trailer.count} records, the file has ${records.length}` };
  if (hash.digest('hex') !== trailer.sha256) return { status: 'corrupt', reason: 'checksum mismatch' };
  return { status: 'ok', header, records };
}

function readLegacy(envelope: { sha256: string; body: string }): SnapshotRead {
  if (sha256Hex(envelope.body) !== envelope.sha256) return { status: 'corrupt', reason: 'checksum mismatch' };
  const body = parseJson(envelope.body);
  const decoded = body.ok ? legacyBodyCodec.decode(body.value) : body;
  if (!decoded.ok) return { status: 'corrupt', reason: decoded.errors.join('; ') };
  return { status: 'ok', header: { v: 1 }, records: decoded.value.sessions };
}
