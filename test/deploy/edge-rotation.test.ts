import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SigningKey } from '../../protocol/index.ts';
import { httpRequest } from './fixtures/http.ts';
import { keySpec, startStack, testKeys, type EdgeStack, type PublishedTestFile } from './fixtures/stack.ts';

const [K1, K2] = testKeys() as [SigningKey, SigningKey];

let stack: EdgeStack;
let file: PublishedTestFile;
let fileBytes: Buffer;
let keysDir: string;
let keysFile: string;

beforeAll(async () => {
  keysDir = await mkdtemp(join(tmpdir(), 'pf-edge-keys-'));
  keysFile = join(keysDir, 'signing-keys');
  await writeFile(keysFile, keySpec([K1]));
  // The origin already knows both keys; the edge learns k2 from its keys file, without a reload.
  stack = await startStack({ originKeys: [K1, K2], keysFile, files: [{ name: 'rotated.bin', sizeBytes: 1_500_000 }] });
  file = stack.files.get('rotated.bin')!;
  fileBytes = await readFile(file.localPath);
});

afterAll(async () => {
  await stack?.stop();
  if (keysDir) await rm(keysDir, { recursive: true, force: true });
});

async function fetchWith(key: SigningKey): Promise<{ status: number; body: Buffer; originRequests: number }> {
  const before = stack.proxy.requests.length;
  const answer = await httpRequest(stack.edge.url + (await stack.sign(file.path, { key })));
  return { status: answer.status, body: answer.body, originRequests: stack.proxy.requests.length - before };
}

describe('key rotation at the edge (keys file, read per request)', () => {
  it('refuses a key the edge does not have yet, without asking the origin', async () => {
    expect((await fetchWith(K1)).status).toBe(200);
    const withK2 = await fetchWith(K2);
    expect(withK2.status).toBe(403);
    expect(withK2.originRequests).toBe(0);
    expect(JSON.parse(withK2.body.toString('utf8'))).toMatchObject({ error: { code: 'PF_ERR_UNKNOWN_KEY' } });
  });

  it('passes URLs signed by the second key once it is added, and the first key still works', async () => {
    await writeFile(keysFile, keySpec([K2, K1]));
    const withK2 = await fetchWith(K2);
    expect(withK2.status).toBe(200);
    expect(withK2.body.equals(fileBytes)).toBe(true);
    expect((await fetchWith(K1)).status).toBe(200);
  });

  it('refuses the first key once it is retired', async () => {
    await writeFile(keysFile, keySpec([K2]));
    expect((await fetchWith(K2)).status).toBe(200);
    const withK1 = await fetchWith(K1);
    expect(withK1.status).toBe(403);
    expect(withK1.originRequests).toBe(0);
  });

  it('fails closed when the keys file is gone', async () => {
    await rm(keysFile);
    const withK2 = await fetchWith(K2);
    expect(withK2.status).toBe(403);
    expect(withK2.originRequests).toBe(0);
    expect(await stack.edge.errorLog()).toContain('cannot read keys file');
  });
});
