import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readStateFile } from '../../client/node/state-file.ts';
import { Bitfield } from '../../protocol/index.ts';
import { killProcess, type CliLine, type CliProcess } from './fixtures/cli.ts';
import { testBytes } from './fixtures/fake-server.ts';
import { MiB, finished, getCli, lineOf, publishFile, sha256, type Published } from './fixtures/get-cli.ts';

/** `peerfill get` interrupted, resumed, raced and pointed at outputs that exist: what a careless user and a publisher do. */
let dir: string;
let published: Published | undefined;
const children: CliProcess[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-get-'));
});
afterEach(async () => {
  for (const child of children.splice(0)) await killProcess(child);
  await published?.server.close();
  published = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function publish(bytes: Uint8Array, egressBytesPerSecond = 0): Promise<Published> {
  published = await publishFile(dir, bytes, { egressBytesPerSecond });
  return published;
}

function get(args: string[], onLine?: (line: CliLine, child: CliProcess['child']) => void): CliProcess {
  const child = getCli(args, { onLine });
  children.push(child);
  return child;
}

/** Run a get until `chunks` chunks are stored, then send `signal`: it must pause (exit 130). */
async function pausedAt(url: string, out: string, chunks: number, signal: NodeJS.Signals = 'SIGINT'): Promise<CliLine[]> {
  let stored = 0;
  const child = get([url, '-o', out, '--no-peers'], (line, proc) => {
    if (line.event === 'chunk' && ++stored === chunks) proc.kill(signal);
  });
  const { code, lines } = await finished(child);
  expect(code).toBe(130);
  expect(lineOf(lines, 'paused')).toBeDefined();
  return lines;
}

async function stateHave(out: string, chunkCount: number): Promise<Bitfield> {
  const state = await readStateFile(`${out}.part.state`);
  if (state.kind !== 'valid') throw new Error(`state: ${state.kind}`);
  return Bitfield.fromBase64Url(state.body.have!, chunkCount)!;
}

describe('peerfill get: resume after what users and publishers do', () => {
  it('the file is republished while paused: says so, keeps the chunks that still match, finishes the new version', async () => {
    const bytes = testBytes(8 * MiB, 71);
    const { server, url, path, chunkSize } = await publish(bytes, 2 * MiB);
    const out = join(dir, 'out.bin');
    await pausedAt(url, out, 12);
    const count = bytes.length / chunkSize;
    const had = await stateHave(out, count);

    // The publisher changes the first chunk and every chunk from 24 on.
    const next = Uint8Array.from(bytes);
    next.set(testBytes(chunkSize, 72), 0);
    next.set(testBytes(8 * chunkSize, 73), 24 * chunkSize);
    await writeFile(path, next);
    await server.origin.refresh();
    const sentBefore = server.dataPlaneBytes();

    const { code, lines, stderr } = await finished(get([url, '-o', out, '--no-peers']));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(lineOf(lines, 'changed')).toMatchObject({ name: 'pub.bin' });
    let stillGood = 0;
    for (let index = 1; index < 24; index++) if (had.get(index)) stillGood++;
    expect(stillGood).toBeGreaterThan(0);
    expect(lineOf(lines, 'state_rejected')).toMatchObject({ reason: 'the file changed on the server since this state was written', kept_chunks: stillGood });
    const done = lineOf(lines, 'done')!;
    expect(Number(done.resumed_bytes)).toBe(stillGood * chunkSize);
    expect(sha256(await readFile(out))).toBe(sha256(next));
    // Only what changed or was missing came from the origin.
    expect(server.dataPlaneBytes() - sentBefore).toBeLessThan(next.length - stillGood * chunkSize + MiB);
  });

  it.each([
    ['HTTP only', ['--no-peers']],
    ['peers on: the swarm is rebuilt for the new version', []],
  ])('the file is republished while a slow get runs (%s): it says so, keeps the chunks that still match, and finishes the new version fetching about only the changed chunks again', async (_label, peerArgs) => {
    const bytes = testBytes(8 * MiB, 75);
    const { server, url, path, chunkSize } = await publish(bytes, 2 * MiB);
    const count = bytes.length / chunkSize;
    const out = join(dir, 'out.bin');
    // The publisher changes a few chunks: two behind the download and two ahead of it.
    const changed = [1, 3, count - 6, count - 2];
    const next = Uint8Array.from(bytes);
    for (const index of changed) next.set(testBytes(chunkSize, 100 + index), index * chunkSize);
    let stored = 0;
    let republishing: Promise<void> | undefined;
    const child = get([url, '-o', out, ...peerArgs], (line) => {
      if (line.event !== 'chunk' || ++stored !== 8) return;
      republishing = (async () => {
        await writeFile(path, next);
        await server.origin.refresh();
      })();
    });
    const { code, lines, stderr } = await finished(child);
    await republishing;
    expect(code, stderr).toBe(0);
    const switched = lineOf(lines, 'changed')!;
    expect(switched).toMatchObject({ name: 'pub.bin', chunk_count: count });
    expect(switched.info_hash).not.toBe(switched.previous_info_hash);
    // Every chunk stored before the switch is kept unless the publisher changed it.
    const chunksBefore = lines.slice(0, lines.indexOf(switched)).filter((line) => line.event === 'chunk').map((line) => Number(line.index));
    const keptExpected = new Set(chunksBefore.filter((index) => !changed.includes(index))).size;
    expect(Number(switched.kept_chunks)).toBe(keptExpected);
    expect(keptExpected).toBeGreaterThanOrEqual(6);
    const done = lineOf(lines, 'done')!;
    expect(done.sha256).toBe(sha256(next));
    expect(sha256(await readFile(out))).toBe(sha256(next));
    // What the origin sent beyond one copy of the file: the changed chunks fetched in their old
    // version, the wrong chunks of runs cut by the switch, and the retries before it.
    const extraChunks = (server.dataPlaneBytes() - next.length) / chunkSize;
    console.log(`republished mid-run: ${chunksBefore.length} chunks before the switch, kept ${String(switched.kept_chunks)}, origin sent ${(server.dataPlaneBytes() / MiB).toFixed(2)} MiB for ${next.length / MiB} (${extraChunks.toFixed(1)} chunks extra)`);
    expect(extraChunks).toBeLessThanOrEqual(changed.length + 8);
  });

  it('the file is republished with another size while a get runs (the origin answers with another Content-Range): it goes on with the new version', async () => {
    const bytes = testBytes(8 * MiB, 76);
    const { server, url, path, chunkSize } = await publish(bytes, 2 * MiB);
    const out = join(dir, 'out.bin');
    // Shorter by two and a half chunks, and chunk 2 changed.
    const next = Uint8Array.from(bytes.subarray(0, bytes.length - 2.5 * chunkSize));
    next.set(testBytes(chunkSize, 77), 2 * chunkSize);
    let stored = 0;
    let republishing: Promise<void> | undefined;
    const child = get([url, '-o', out, '--no-peers'], (line) => {
      if (line.event !== 'chunk' || ++stored !== 8) return;
      republishing = (async () => {
        await writeFile(path, next);
        await server.origin.refresh();
      })();
    });
    const { code, lines, stderr } = await finished(child);
    await republishing;
    expect(code, stderr).toBe(0);
    const switched = lineOf(lines, 'changed')!;
    expect(switched).toMatchObject({ name: 'pub.bin', chunk_count: Math.ceil(next.length / chunkSize) });
    const chunksBefore = new Set(lines.slice(0, lines.indexOf(switched)).filter((line) => line.event === 'chunk').map((line) => Number(line.index)));
    const lastWhole = Math.floor(next.length / chunkSize) - 1;
    const keptExpected = [...chunksBefore].filter((index) => index !== 2 && index <= lastWhole).length;
    expect(Number(switched.kept_chunks)).toBe(keptExpected);
    expect(keptExpected).toBeGreaterThanOrEqual(6);
    expect(lineOf(lines, 'done')!.sha256).toBe(sha256(next));
    const written = await readFile(out);
    expect(written.length).toBe(next.length);
    expect(sha256(written)).toBe(sha256(next));
    console.log(`republished with another size mid-run: kept ${String(switched.kept_chunks)} of ${chunksBefore.size} stored; origin sent ${(server.dataPlaneBytes() / MiB).toFixed(2)} MiB for ${(next.length / MiB).toFixed(2)}`);
  });

  it('a byte flipped in a verified chunk of the .part: the whole-file check fails, every chunk is re-verified, the bad one refetched', async () => {
    const bytes = testBytes(8 * MiB, 74);
    const { url, chunkSize } = await publish(bytes, 2 * MiB);
    const out = join(dir, 'out.bin');
    await pausedAt(url, out, 10);
    const had = await stateHave(out, bytes.length / chunkSize);
    let victim = 0;
    while (!had.get(victim)) victim++;
    const handle = await open(`${out}.part`, 'r+');
    await handle.write(Uint8Array.of(bytes[victim * chunkSize + 100]! ^ 0xff), 0, 1, victim * chunkSize + 100);
    await handle.close();

    const { code, lines } = await finished(get([url, '-o', out, '--no-peers']));
    expect(code).toBe(0);
    expect(lineOf(lines, 'healed')).toEqual({ event: 'healed', chunks: 1 });
    expect(sha256(await readFile(out))).toBe(sha256(bytes));
  });

  it('a state file from another download of the same file is not trusted: its chunks are re-verified against this .part', async () => {
    const bytes = testBytes(8 * MiB, 75);
    const { url } = await publish(bytes, 2 * MiB);
    const a = join(dir, 'a.bin');
    const b = join(dir, 'b.bin');
    await pausedAt(url, a, 16);
    await pausedAt(url, b, 4);
    await copyFile(`${a}.part.state`, `${b}.part.state`);

    const { code, lines } = await finished(get([url, '-o', b, '--no-peers']));
    expect(code).toBe(0);
    const rejected = lineOf(lines, 'state_rejected')!;
    expect(rejected.reason).toBe('state belongs to another .part file (foreign)');
    // b's own chunks verify again; a's others are not in b.part.
    expect(Number(rejected.kept_chunks)).toBeLessThan(Number(rejected.rechecked_chunks));
    expect(sha256(await readFile(b))).toBe(sha256(bytes));
  });

  it('a signal right after the last chunk: either published with its state removed (0) or paused with its state saved (130), every time', async () => {
    const bytes = testBytes(4 * MiB, 76);
    const { url, chunkSize } = await publish(bytes);
    const count = bytes.length / chunkSize;
    const outcomes = { published: 0, paused: 0 };
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    for (let attempt = 0; attempt < 9; attempt++) {
      const out = join(dir, `end-${attempt}.bin`);
      let stored = 0;
      // After the last chunk, or with the last one still in flight.
      const killAt = attempt % 2 === 0 ? count : count - 1;
      const { code, lines } = await finished(
        get([url, '-o', out, '--no-peers'], (line, proc) => {
          if (line.event === 'chunk' && ++stored === killAt) proc.kill(signals[attempt % signals.length]);
        }),
      );
      const exists = async (path: string) => stat(path).then(() => true, () => false);
      if (code === 0) {
        outcomes.published++;
        expect(lineOf(lines, 'done')).toBeDefined();
        expect(sha256(await readFile(out))).toBe(sha256(bytes));
        expect(await exists(`${out}.part`)).toBe(false);
        expect(await exists(`${out}.part.state`)).toBe(false);
      } else {
        expect(code).toBe(130);
        outcomes.paused++;
        expect(lineOf(lines, 'paused')).toBeDefined();
        expect(await exists(out)).toBe(false);
        const kept = (await stateHave(out, count)).count();
        expect(kept).toBeGreaterThanOrEqual(killAt);
        // The rerun publishes what the pause kept, fetching only what it had not.
        const rerun = await finished(get([url, '-o', out, '--no-peers']));
        expect(rerun.code).toBe(0);
        expect(Number(lineOf(rerun.lines, 'done')!.resumed_bytes)).toBe(kept * chunkSize);
        expect(sha256(await readFile(out))).toBe(sha256(bytes));
      }
    }
    console.log(`signal after the last chunk: ${outcomes.published} published (exit 0), ${outcomes.paused} paused (exit 130) of 9`);
  });

  it('SIGHUP (a closed terminal) mid-download pauses like Ctrl-C, and the rerun resumes', async () => {
    const bytes = testBytes(8 * MiB, 77);
    const { url, chunkSize } = await publish(bytes, 2 * MiB);
    const out = join(dir, 'out.bin');
    await pausedAt(url, out, 6, 'SIGHUP');
    const kept = (await stateHave(out, bytes.length / chunkSize)).count();
    expect(kept).toBeGreaterThanOrEqual(6);
    const { code, lines } = await finished(get([url, '-o', out, '--no-peers']));
    expect(code).toBe(0);
    expect(Number(lineOf(lines, 'done')!.resumed_bytes)).toBe(kept * chunkSize);
  });
});

describe('peerfill get: the output', () => {
  it('a second get of the same output is refused with the first one\'s pid (exit 7); a dead holder\'s lock is taken over', async () => {
    const bytes = testBytes(8 * MiB, 78);
    const { server, url } = await publish(bytes, 4 * MiB);
    const out = join(dir, 'out.bin');
    const first = get([url, '-o', out, '--no-peers']);
    await first.waitForLine((line) => line.event === 'chunk', 'the first get to store a chunk');
    const second = await finished(get([url, '-o', out, '--no-peers']));
    expect(second.code).toBe(7);
    expect(lineOf(second.lines, 'error')!.message).toBe(`another peerfill get (pid ${first.child.pid}) is downloading ${out}`);
    expect((await finished(first)).code).toBe(0);
    expect(sha256(await readFile(out))).toBe(sha256(bytes));
    // One copy of the file left the origin, not two.
    expect(server.dataPlaneBytes()).toBeLessThan(bytes.length + MiB);

    const other = join(dir, 'other.bin');
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    await writeFile(`${other}.part.lock`, `${dead}\n`);
    const takeover = await finished(get([url, '-o', other, '--no-peers']));
    expect(takeover.code).toBe(0);
    expect(await stat(`${other}.part.lock`).then(() => true, () => false)).toBe(false);
  });

  it('a finished output is verified locally and not fetched again; another file is kept unless --force; -o DIR/ puts the file inside', async () => {
    const bytes = testBytes(4 * MiB, 79);
    const { server, url } = await publish(bytes);
    const out = join(dir, 'out.bin');
    expect((await finished(get([url, '-o', out, '--no-peers']))).code).toBe(0);
    const sent = server.dataPlaneBytes();

    const again = await finished(get([url, '-o', out, '--no-peers']));
    expect(again.code).toBe(0);
    expect(lineOf(again.lines, 'done')).toMatchObject({ already_downloaded: true, sha256: sha256(bytes) });
    expect(server.dataPlaneBytes()).toBe(sent);

    const other = join(dir, 'notes.txt');
    await writeFile(other, 'my own notes\n');
    const refused = await finished(get([url, '-o', other, '--no-peers']));
    expect(refused.code).toBe(8);
    expect(String(lineOf(refused.lines, 'error')!.message)).toContain('exists and is another file');
    expect(await readFile(other, 'utf8')).toBe('my own notes\n');
    expect((await finished(get([url, '-o', other, '--no-peers', '--force']))).code).toBe(0);
    expect(sha256(await readFile(other))).toBe(sha256(bytes));

    const folder = join(dir, 'downloads');
    const inside = await finished(get([url, '-o', `${folder}/`, '--no-peers']));
    expect(inside.code).toBe(6); // DIR/ names a folder that must exist
    await mkdir(folder);
    for (const target of [`${folder}/`, folder]) {
      const { code, lines } = await finished(get([url, '-o', target, '--no-peers']));
      expect(code).toBe(0);
      expect(lineOf(lines, 'done')!.path).toBe(join(folder, 'pub.bin'));
    }
    expect(sha256(await readFile(join(folder, 'pub.bin')))).toBe(sha256(bytes));
  });
});
