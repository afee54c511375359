import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../support/net.ts';

// Each command loads only what it uses: the AWS SDK, fastify and ioredis cost start-up time
// and memory (the SDK alone ~130 ms and ~25 MB). The CLI runs as users run it, with a loader
// hook that logs every module the ESM loader loads; the positive controls show that the
// hook sees each heavy package when a command does use it, so a regression cannot pass unseen.
const CLI = fileURLToPath(new URL('../../bin/peerfill.mjs', import.meta.url));
const HOOK = fileURLToPath(new URL('../support/module-log.mjs', import.meta.url));
const HEAVY = { awsSdk: '/node_modules/@aws-sdk/', fastify: '/node_modules/fastify/', ioredis: '/node_modules/ioredis/' } as const;
type Heavy = keyof typeof HEAVY;
const KEYS = 'k1:module-loads-secret-0123456789';

interface Run {
  code: number | null;
  out: string;
  err: string;
  loaded: Set<Heavy>;
}

let dir: string;
let runs = 0;

async function loadedHeavy(logPath: string): Promise<Set<Heavy>> {
  const urls = await readFile(logPath, 'utf8').catch(() => '');
  return new Set((Object.keys(HEAVY) as Heavy[]).filter((name) => urls.includes(HEAVY[name])));
}

/** Runs the CLI to its end, or, with `until`, until `until` holds of its output or loads, then kills it. */
async function peerfill(args: string[], env: Record<string, string> = {}, until?: (run: Run) => boolean): Promise<Run> {
  const logPath = join(dir, `modules-${++runs}.log`);
  const child = spawn(process.execPath, ['--import', HOOK, CLI, ...args], {
    cwd: dir,
    env: { ...process.env, PEERFILL_SIGNING_KEYS: KEYS, PEERFILL_DATA_DIR: join(dir, 'data'), PEERFILL_FILES_DIR: join(dir, 'files'), PEERFILL_LOG_LEVEL: 'warn', PF_MODULE_LOG: logPath, ...env },
  });
  const run: Run = { code: null, out: '', err: '', loaded: new Set() };
  child.stdout.on('data', (chunk: Buffer) => (run.out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (run.err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (until) {
    let hasExited = false;
    void exited.then(() => (hasExited = true));
    await waitFor(async () => {
      run.loaded = await loadedHeavy(logPath);
      return hasExited || until(run);
    }, `peerfill ${args.join(' ')} (stderr: ${run.err})`);
    child.kill('SIGKILL');
  }
  run.code = await exited;
  run.loaded = await loadedHeavy(logPath);
  return run;
}

describe('heavy modules each command loads (real processes)', () => {
  let fileId: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-module-loads-'));
    await mkdir(join(dir, 'files'));
    await writeFile(join(dir, 'files', 'small.bin'), 'four kilobytes or so'.repeat(200));
    const added = await peerfill(['add', join(dir, 'files', 'small.bin')]);
    expect(added.err).toBe('');
    expect(added.code).toBe(0);
    fileId = (JSON.parse(added.out) as { file_id: string }).file_id;
    expect(added.loaded).toEqual(new Set());
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('sign in folder mode: none of the AWS SDK, fastify, ioredis', async () => {
    const signed = await peerfill(['sign', fileId]);
    expect(signed.err).toBe('');
    expect(signed.code).toBe(0);
    expect(signed.out).toContain(`/d/${fileId}/`);
    expect(signed.loaded).toEqual(new Set());
  });

  it('get --help and grant: none of them', async () => {
    const help = await peerfill(['get', '--help']);
    expect(help.code).toBe(0);
    expect(help.loaded).toEqual(new Set());
    const granted = await peerfill(['grant', fileId, '--user', 'alice'], { PEERFILL_PUBLISHER_KEYS: 'p1:publisher-secret-0123456789ab' });
    expect(granted.code).toBe(0);
    expect(granted.loaded).toEqual(new Set());
  });

  it('serve (folder, memory store) loads fastify, and neither the AWS SDK nor ioredis', async () => {
    const served = await peerfill(['serve', '--port', String(await freePort()), '--host', '127.0.0.1'], {}, (run) => run.out.includes('peerfill serving'));
    expect(served.out).toContain('peerfill serving');
    expect(served.loaded).toEqual(new Set(['fastify']));
  });

  it('positive control: serve --redis loads ioredis', async () => {
    // Nothing listens there: the store's module loads before it connects, and the run is killed.
    const served = await peerfill(['serve', '--port', String(await freePort()), '--redis', `redis://127.0.0.1:${await freePort()}`], {}, (run) => run.loaded.has('ioredis'));
    expect(served.loaded).toContain('ioredis');
  });

  it('positive control: sign in S3 mode loads the AWS SDK', async () => {
    const s3 = { PEERFILL_S3_BUCKET: 'bucket', PEERFILL_S3_ENDPOINT: `http://127.0.0.1:${await freePort()}`, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' };
    const signed = await peerfill(['sign', fileId], s3, (run) => run.loaded.has('awsSdk'));
    expect(signed.loaded).toContain('awsSdk');
    expect(signed.loaded).not.toContain('fastify');
  });
});
