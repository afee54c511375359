import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createOrigin } from '../../origin/index.ts';
import { captureLogger } from '../tracker/fixtures/harness.ts';
import { tempDir } from './fixtures.ts';

describe('files the folder scan cannot publish', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  it('reports a name that is not UTF-8 (once, escaped) instead of skipping it silently', async () => {
    const files = await tempDir('bad-names');
    const data = await tempDir('bad-names-data');
    cleanups.push(files.cleanup, data.cleanup);
    await mkdir(join(files.path, 'sub'));
    // Latin-1 "café.iso": the é is one byte, 0xe9, which is not UTF-8 on its own.
    await writeFile(Buffer.concat([Buffer.from(`${files.path}/sub/caf`), Buffer.from([0xe9]), Buffer.from('.iso')]), 'old bytes');
    await writeFile(join(files.path, 'fine.iso'), 'good bytes');
    const { logger, lines } = captureLogger();
    const origin = await createOrigin({ filesDir: files.path, dataDir: data.path, publicUrl: 'http://127.0.0.1:1', urlTtlSeconds: 60 }, { logger });
    try {
      await origin.refresh();
      const reports = lines.filter((line) => line.msg === 'file not published');
      expect(reports).toHaveLength(1);
      expect(reports[0]).toMatchObject({ level: 40, path: 'sub/caf\\xe9.iso', reason: 'the name is not valid UTF-8' });
      const { fileIdFor } = await import('../../origin/publish/catalog.ts');
      expect(await origin.directory.getByFileId(fileIdFor('dir:fine.iso'))).toBeDefined();
    } finally {
      await origin.close();
    }
  });
});
