import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Storage } from '../../origin/storage/storage.ts';
import { readRange } from '../../origin/storage/storage.ts';
import { FolderStorage } from '../../origin/storage/storage-folder.ts';
import { S3Storage } from '../../origin/storage/storage-s3.ts';
import { patternBytes, startS3, tempDir, writeFiles, type S3Fixture } from './fixtures.ts';

const BIG = patternBytes(300_000, 7);
const FILES: Record<string, Uint8Array | string> = {
  'a.txt': 'hello world',
  'dir/b.bin': BIG,
  'dir/deeper/c.txt': 'c',
  'empty.dat': '',
  '.hidden': 'not published',
  '.git/config': 'not published either',
};
const PUBLISHED = ['a.txt', 'dir/b.bin', 'dir/deeper/c.txt', 'empty.dat'];

interface Backend {
  name: string;
  setup(): Promise<{ storage: Storage; keyFor(name: string): string; write(name: string, body: string): Promise<void>; teardown(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'folder',
    async setup() {
      const dir = await tempDir('storage');
      await writeFiles(dir.path, FILES);
      const storage = await FolderStorage.create(dir.path);
      return {
        storage,
        keyFor: (name) => name,
        write: (name, body) => writeFiles(dir.path, { [name]: body }),
        teardown: async () => {
          await storage.close();
          await dir.cleanup();
        },
      };
    },
  },
  {
    name: 's3',
    async setup() {
      const s3: S3Fixture = await startS3();
      const prefix = 'pub/';
      for (const [name, body] of Object.entries(FILES)) await s3.put(prefix + name, body);
      await s3.put('outside-prefix.txt', 'not under the prefix');
      const storage = new S3Storage({ bucket: s3.bucket, prefix, endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true });
      return {
        storage,
        keyFor: (name) => prefix + name,
        write: (name, body) => s3.put(prefix + name, body),
        teardown: async () => {
          await storage.close();
          await s3.close();
        },
      };
    },
  },
];

describe.each(backends)('storage contract: $name', (backend) => {
  let fixture: Awaited<ReturnType<Backend['setup']>>;
  beforeAll(async () => {
    fixture = await backend.setup();
  });
  afterAll(async () => {
    await fixture.teardown();
  });

  it('lists every publishable file with its size, and no dot-files', async () => {
    const listed = [];
    for await (const entry of fixture.storage.list()) listed.push(entry);
    expect(listed.map((entry) => entry.key).sort()).toEqual(PUBLISHED.map((name) => fixture.keyFor(name)).sort());
    const big = listed.find((entry) => entry.key === fixture.keyFor('dir/b.bin'));
    expect(big?.sizeBytes).toBe(BIG.length);
    expect(big?.etag).toMatch(/^"[^"]+"$/);
  });

  it('stats a file and reports missing or hidden keys as undefined', async () => {
    const found = await fixture.storage.stat(fixture.keyFor('a.txt'));
    expect(found?.sizeBytes).toBe(11);
    expect(found?.mtimeMs).toBeGreaterThan(0);
    expect(await fixture.storage.stat(fixture.keyFor('nope.txt'))).toBeUndefined();
    expect(await fixture.storage.stat(fixture.keyFor('.hidden'))).toBeUndefined();
    expect(await fixture.storage.open(fixture.keyFor('nope.txt'))).toBeUndefined();
  });

  it('reads exact inclusive ranges, through streams and the small-read and positional paths', async () => {
    const handle = await fixture.storage.open(fixture.keyFor('dir/b.bin'));
    expect(handle).toBeDefined();
    try {
      // Not [0, 0]: s3rver reads `bytes=0-0` as the whole object (our S3 handle rejects that answer).
      for (const [start, end] of [[0, 1], [0, BIG.length - 1], [1000, 1999], [BIG.length - 1, BIG.length - 1], [65_535, 200_000]] as const) {
        const stream = await handle!.createReadStream(start, end);
        const chunks: Buffer[] = [];
        for await (const chunk of stream) {
          if (!(chunk instanceof Uint8Array)) throw new Error('not bytes');
          chunks.push(Buffer.from(chunk));
        }
        expect(Buffer.concat(chunks).equals(BIG.subarray(start, end + 1))).toBe(true);
        if (handle!.readInto) {
          const target = Buffer.alloc(end - start + 1);
          expect(await handle!.readInto(target, start)).toBe(target.length);
          expect(target.equals(BIG.subarray(start, end + 1))).toBe(true);
        }
      }
      if (handle!.readInto) {
        // As many bytes as fit, fewer at the end of the file, none past it.
        const target = Buffer.alloc(100_000);
        expect(await handle!.readInto(target, 1000)).toBe(target.length);
        expect(target.equals(BIG.subarray(1000, 101_000))).toBe(true);
        expect(await handle!.readInto(target, BIG.length - 10)).toBe(10);
        expect(target.subarray(0, 10).equals(BIG.subarray(BIG.length - 10))).toBe(true);
        expect(await handle!.readInto(target, BIG.length)).toBe(0);
      }
    } finally {
      await handle!.close();
    }
    expect(await text(await readRange(fixture.storage, fixture.keyFor('a.txt'), 6, 10))).toBe('world');
  });

  it('a destroyed stream stops early and the handle still closes', async () => {
    const handle = await fixture.storage.open(fixture.keyFor('dir/b.bin'));
    const stream = await handle!.createReadStream(0, BIG.length - 1, { highWaterMarkBytes: 1024 });
    const first: unknown = await new Promise((resolve) => stream.once('data', resolve));
    expect(first).toBeInstanceOf(Uint8Array);
    stream.destroy();
    await new Promise((resolve) => stream.once('close', resolve));
    expect(stream.destroyed).toBe(true);
    await handle!.close();
  });

  it('changes the ETag when the content changes', async () => {
    const before = await fixture.storage.stat(fixture.keyFor('dir/deeper/c.txt'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    await fixture.write('dir/deeper/c.txt', 'changed content');
    const after = await fixture.storage.stat(fixture.keyFor('dir/deeper/c.txt'));
    expect(after?.sizeBytes).toBe(15);
    expect(after?.etag).not.toBe(before?.etag);
  });
});

describe('folder storage: confinement', () => {
  it('never publishes or opens anything outside the root', async () => {
    const outside = await tempDir('outside');
    const root = await tempDir('root');
    try {
      await writeFiles(outside.path, { 'secret.txt': 'secret' });
      await writeFiles(root.path, { 'inside.txt': 'inside', 'sub/x.txt': 'x' });
      await symlink(join(outside.path, 'secret.txt'), join(root.path, 'escape.txt'));
      await symlink(outside.path, join(root.path, 'escape-dir'));
      await symlink(join(root.path, 'inside.txt'), join(root.path, 'alias.txt'));
      await symlink(join(root.path, 'sub'), join(root.path, 'loop'));
      const storage = await FolderStorage.create(root.path);
      const keys = [];
      for await (const entry of storage.list()) keys.push(entry.key);
      expect(keys.sort()).toEqual(['alias.txt', 'inside.txt', 'sub/x.txt']);
      for (const key of ['escape.txt', 'escape-dir/secret.txt', '../outside/secret.txt', '/etc/passwd', 'sub/../../x', 'sub/./x.txt', '', 'sub//x.txt', '.hidden', 'a\0b']) {
        expect(await storage.stat(key), key).toBeUndefined();
        expect(await storage.open(key), key).toBeUndefined();
      }
      expect(storage.keyOf(join(outside.path, 'secret.txt'))).toBeUndefined();
      expect(storage.keyOf(join(storage.rootPath, 'sub', 'x.txt'))).toBe('sub/x.txt');
    } finally {
      await outside.cleanup();
      await root.cleanup();
    }
  });
});
