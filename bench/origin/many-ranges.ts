// Server CPU of a multipart answer of 100 one-byte ranges against a single one-byte range,
// measured from /proc of a real `peerfill serve` process. npx tsx bench/origin/many-ranges.ts
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, Agent } from 'node:http';

const dir = await mkdtemp(join(tmpdir(), 'pf-bench-ranges-'));
await mkdir(join(dir, 'data', 'files'), { recursive: true });
await writeFile(join(dir, 'data', 'files', 'f.bin'), Buffer.alloc(4 * 1024 * 1024, 7));
const port = 20_000 + Math.floor(Math.random() * 20_000);
const child = spawn(process.execPath, [new URL('../../bin/peerfill.mjs', import.meta.url).pathname, 'serve', '--port', String(port), '--log-level', 'warn'], { cwd: dir });
let out = '';
child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
while (!out.includes('web page:')) await new Promise((resolve) => setTimeout(resolve, 50));
const base = `http://127.0.0.1:${port}`;
const fileId = ((await (await fetch(`${base}/files`)).json()) as { files: { file_id: string }[] }).files[0]!.file_id;
const created = (await (await fetch(`${base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ file_id: fileId }) })).json()) as { download_url: string };
const url = new URL(created.download_url);
const agent = new Agent({ keepAlive: true, maxSockets: 4 });
const many = `bytes=${Array.from({ length: 100 }, (_, i) => `${i * 1000}-${i * 1000}`).join(',')}`;

const cpuTicks = async () => {
  const fields = (await readFile(`/proc/${child.pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
};
const get = (range: string) =>
  new Promise<void>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: url.pathname + url.search, headers: { range }, agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 206 ? resolve() : reject(new Error(String(res.statusCode)))));
    });
    req.on('error', reject);
    req.end();
  });
async function ticksPerRequest(range: string, count: number): Promise<number> {
  const before = await cpuTicks();
  for (let i = 0; i < count; i += 4) await Promise.all([get(range), get(range), get(range), get(range)]);
  return ((await cpuTicks()) - before) / count;
}
for (let round = 0; round < 3; round++) {
  const single = await ticksPerRequest('bytes=0-0', 4000);
  const hundred = await ticksPerRequest(many, 4000);
  console.log(`server CPU per request: one 1-byte range ${(single * 10_000).toFixed(0)} us, 100 1-byte ranges ${(hundred * 10_000).toFixed(0)} us (${(hundred / single).toFixed(1)}x)`);
}
agent.destroy();
const exited = new Promise((resolve) => child.once('exit', resolve));
child.kill('SIGTERM');
await exited;
await rm(dir, { recursive: true, force: true });
