import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileIdSchema, InfoHashSchema, MIN_CHUNK_SIZE_BYTES, Sha256HexSchema, createCodec } from '../../protocol/index.ts';

const CLI = new URL('../../bin/peerfill.mjs', import.meta.url).pathname;
/** The one line `peerfill add` prints: exactly these fields. */
const AddLineCodec = createCodec(
  Type.Object(
    {
      file_id: FileIdSchema,
      name: Type.String(),
      size: Type.Integer(),
      sha256: Sha256HexSchema,
      info_hash: InfoHashSchema,
      chunks: Type.Integer(),
      private: Type.Boolean(),
    },
    { additionalProperties: false },
  ),
);

function peerfill(args: string[], cwd: string): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, PEERFILL_LOG_LEVEL: 'warn' } });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, out, err })));
}

describe('peerfill add (real process)', () => {
  let dir: string;
  // Over the builder's inline limit, so the chunks are hashed by the worker thread.
  const content = randomBytes(9 * 1024 * 1024 + 123);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-add-'));
    await mkdir(join(dir, 'files'));
    await mkdir(join(dir, 'elsewhere'));
    await writeFile(join(dir, 'elsewhere', 'release.iso'), content);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints one JSON line describing the manifest and remembers the file', async () => {
    const result = await peerfill(['add', join(dir, 'elsewhere', 'release.iso'), '--data-dir', join(dir, 'data'), '--files', join(dir, 'files')], dir);
    expect(result.err).toBe('');
    expect(result.code).toBe(0);
    const line = AddLineCodec.parse(JSON.parse(result.out));
    expect(line).toEqual({
      file_id: line.file_id,
      name: 'release.iso',
      size: content.length,
      sha256: createHash('sha256').update(content).digest('hex'),
      info_hash: line.info_hash,
      chunks: Math.ceil(content.length / MIN_CHUNK_SIZE_BYTES),
      private: false,
    });
    expect(await readFile(join(dir, 'data', 'added-files.json'), 'utf8')).toContain('release.iso');
  });

  it('records --private with the file, also for a file the folder scan covers, and the origin publishes it as private', async () => {
    await writeFile(join(dir, 'files', 'inside.bin'), randomBytes(1000));
    const result = await peerfill(['add', '--private', join(dir, 'files', 'inside.bin'), '--data-dir', join(dir, 'data'), '--files', join(dir, 'files')], dir);
    expect(result.code).toBe(0);
    expect(AddLineCodec.parse(JSON.parse(result.out)).private).toBe(true);
    const added: unknown = JSON.parse(await readFile(join(dir, 'data', 'added-files.json'), 'utf8'));
    expect(added).toMatchObject({ sources: expect.arrayContaining([expect.objectContaining({ path: join(dir, 'files', 'inside.bin'), private: true })]) as unknown });
    const { createOrigin } = await import('../../origin/index.ts');
    const { pino } = await import('pino');
    const origin = await createOrigin({ filesDir: join(dir, 'files'), dataDir: join(dir, 'data'), publicUrl: 'http://127.0.0.1:1', urlTtlSeconds: 60 }, { logger: pino({ level: 'silent' }) });
    try {
      const id = JSON.parse(result.out) as { file_id: string };
      expect((await origin.directory.getByFileId(id.file_id))?.isPrivate).toBe(true);
      const other = await origin.directory.getByFileId((AddLineCodec.parse(JSON.parse((await peerfill(['add', join(dir, 'elsewhere', 'release.iso'), '--data-dir', join(dir, 'data'), '--files', join(dir, 'files')], dir)).out))).file_id);
      expect(other?.isPrivate).toBe(false);
    } finally {
      await origin.close();
    }
  });

  it('fails with a message for a missing file, and with usage for no file', async () => {
    const missing = await peerfill(['add', join(dir, 'nope.bin'), '--data-dir', join(dir, 'data'), '--files', join(dir, 'files')], dir);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('not a regular file');
    const usage = await peerfill(['add'], dir);
    expect(usage.code).toBe(2);
    expect(usage.err).toContain('usage: peerfill add');
  });
});
