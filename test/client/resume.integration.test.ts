import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { killProcess, runCli, type CliLine, type CliProcess } from './fixtures/cli.ts';
import { testBytes } from './fixtures/fake-server.ts';
import { startTestServer, type TestServer } from './fixtures/server.ts';

const MiB = 1024 * 1024;
let dir: string | undefined;
let server: TestServer | undefined;
let child: CliProcess | undefined;
afterEach(async () => {
  await killProcess(child);
  await server?.close();
  server = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Run `peerfill get` in a child process; `onLine` may return true to SIGKILL it. */
async function runGet(args: string[], onLine: (line: CliLine) => boolean): Promise<{ code: number | null; lines: CliLine[] }> {
  child = runCli(['get', ...args, '--json'], {
    onLine: (line, proc) => {
      if (onLine(line)) proc.kill('SIGKILL');
    },
  });
  const code = await child.exit;
  return { code, lines: child.lines() };
}

describe('peerfill get: kill -9 mid-download, then resume', () => {
  it('resumes from the state file, re-downloading no more than the chunks in flight', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-resume-'));
    await mkdir(join(dir, 'files'));
    const bytes = testBytes(24 * MiB, 31);
    await writeFile(join(dir, 'files', 'big.bin'), bytes);
    // A capped origin keeps the download slow enough to be killed in the middle.
    server = await startTestServer({ filesDir: join(dir, 'files'), dataDir: join(dir, 'data'), egressBytesPerSecond: 6 * MiB });
    const list = (await (await fetch(`${server.url}/files`)).json()) as { files: Array<{ file_id: string; chunk_size: number }> };
    const { file_id: fileId, chunk_size: chunkSize } = list.files[0]!;
    const out = join(dir, 'out.bin');
    const args = [`${server.url}/${fileId}`, '-o', out, '--no-peers'];

    let durable = 0;
    let verifiedAtKill = 0;
    const first = await runGet(args, (line) => {
      if (line.event === 'saved') durable = Number(line.chunks_durable);
      if (line.event === 'chunk') verifiedAtKill++;
      return verifiedAtKill >= 30;
    });
    expect(first.code).toBeNull(); // killed by SIGKILL
    expect(first.lines.some((l) => l.event === 'done')).toBe(false);

    const second = await runGet(args, () => false);
    expect(second.code).toBe(0);
    const done = second.lines.find((l) => l.event === 'done')!;
    const resumedChunks = Number(done.resumed_bytes) / chunkSize;
    // Durable progress is never lost; what was lost is at most the chunks in flight.
    expect(resumedChunks).toBeGreaterThanOrEqual(durable);
    const lostChunks = verifiedAtKill - resumedChunks;
    console.log(`resume: ${durable} chunks durable at kill, ${verifiedAtKill} verified, ${resumedChunks} resumed, ${lostChunks} re-downloaded`);
    expect(lostChunks).toBeLessThanOrEqual(8);
    expect(Number(done.from_http_bytes)).toBe(bytes.length - Number(done.resumed_bytes));
    expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
  }, 120_000);
});
