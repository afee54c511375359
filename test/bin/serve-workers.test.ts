import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileListSchema, createCodec, parseSigningKeys, signedPath } from '../../protocol/index.ts';
import { UrlSigner } from '../../origin/signing/signer.ts';
import { freePort, waitFor } from '../support/net.ts';

const CLI = fileURLToPath(new URL('../../bin/peerfill.mjs', import.meta.url));
const KEYS = 'k1:serve-workers-secret-0123456789';

/** Live node processes whose parent is `pid` (Linux /proc): the cluster's workers. */
async function nodeChildren(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === pid && stat.includes('(node)') && fields[0] !== 'Z') children.push(Number(name));
  }
  return children;
}

describe('peerfill serve --workers 2 (real processes)', () => {
  let dir: string;
  let server: ChildProcess;
  let output = '';
  let controlUrl: string;
  let dataUrl: string;
  const content = randomBytes(3 * 1024 * 1024 + 17);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-serve-workers-'));
    await mkdir(join(dir, 'files'));
    await writeFile(join(dir, 'files', 'blob.bin'), content);
    const [port, dataPort] = [await freePort(), await freePort()];
    controlUrl = `http://127.0.0.1:${port}`;
    dataUrl = `http://127.0.0.1:${dataPort}`;
    server = spawn(process.execPath, [CLI, 'serve', '--files', join(dir, 'files'), '--data-dir', join(dir, 'data'), '--port', String(port), '--data-port', String(dataPort), '--workers', '2', '--log-level', 'warn'], {
      env: { ...process.env, PEERFILL_SIGNING_KEYS: KEYS },
    });
    server.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitFor(() => output.includes('data plane: 2 workers') || server.exitCode !== null, 'serve --workers 2 to start');
    expect(server.exitCode).toBe(null);
  });

  afterAll(async () => {
    if (server.exitCode === null) {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  async function signedUrl(): Promise<string> {
    const listing = createCodec(FileListSchema).parse(await (await fetch(`${controlUrl}/files`)).json());
    const fileId = listing.files.find((file) => file.name === 'blob.bin')!.file_id;
    const keys = parseSigningKeys(KEYS);
    if (!keys.ok) throw new Error('bad keys');
    return `${dataUrl}${new UrlSigner(keys.keys).signedPathAndQuery(signedPath(fileId, 'blob.bin'), Math.floor(Date.now() / 1000), 600).pathAndQuery}`;
  }

  async function expectRanges(url: string, count: number): Promise<void> {
    const answers = await Promise.all(
      Array.from({ length: count }, async (_, index) => {
        const start = (index * 97_531) % (content.length - 4096);
        const response = await fetch(url, { headers: { range: `bytes=${start}-${start + 4095}` } });
        return { start, status: response.status, range: response.headers.get('content-range'), body: Buffer.from(await response.arrayBuffer()) };
      }),
    );
    for (const answer of answers) {
      expect(answer.status).toBe(206);
      expect(answer.range).toBe(`bytes ${answer.start}-${answer.start + 4095}/${content.length}`);
      expect(answer.body.equals(content.subarray(answer.start, answer.start + 4096))).toBe(true);
    }
  }

  it('serves exact ranges from the data port, and the control plane from the main port', async () => {
    expect(await nodeChildren(server.pid!)).toHaveLength(2);
    await expectRanges(await signedUrl(), 40);
    // The data port carries the data plane alone.
    expect((await fetch(`${dataUrl}/files`)).status).toBe(404);
    expect((await fetch(`${controlUrl}/healthz`)).status).toBe(200);
  });

  it('survives a killed worker: the other serves, the primary starts a new one', async () => {
    const url = await signedUrl();
    const [victim, survivor] = await nodeChildren(server.pid!);
    process.kill(victim!, 'SIGKILL');
    await waitFor(async () => !(await nodeChildren(server.pid!)).includes(victim!), 'the killed worker to go');
    await expectRanges(url, 20);
    await waitFor(async () => (await nodeChildren(server.pid!)).length === 2, 'a new worker');
    const now = await nodeChildren(server.pid!);
    expect(now).toContain(survivor);
    expect(now).not.toContain(victim);
    await expectRanges(url, 40);
    expect(server.exitCode).toBe(null);
  });
});
