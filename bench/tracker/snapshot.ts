// The memory store's snapshot at N sessions: time to write, longest event-loop stall, RSS.
// npx tsx bench/tracker/snapshot.ts [N]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { MemoryStore } from '../../tracker/store/store-memory.ts';
const N = Number(process.argv[2] ?? 200000);
const dir = await mkdtemp(join(tmpdir(), 'pf-bench-snapshot-'));
const store = new MemoryStore({ snapshotPath: join(dir, 'tracker-snapshot.json'), maxSessions: N }, pino({ level: 'silent' }));
await store.start();
const now = Date.now();
for (let i = 0; i < N; i++) await store.createSession({ session_id: `s${i.toString(36).padStart(20, '0')}`, token_sha256: randomBytes(32).toString('hex'), file_id: 'alpha', info_hash: 'ab'.repeat(20), checksum: `sha256:${'cd'.repeat(32)}`, total_bytes: 4e9, chunk_size: 4194304, chunk_count: 954, status: 'active', have: 'A'.repeat(160), bytes_confirmed: 0, contiguous_bytes: 0, bytes_from_peers: i, bytes_from_http: 0, transfer_rate_bps: 0, rate_sampled_at_ms: now, created_at_ms: now, updated_at_ms: now, expires_at_ms: now + 3.6e6 }, 3600);
for (let round = 0; round < 3; round++) {
  let last = performance.now(); let max = 0; const gaps: number[] = [];
  const t = setInterval(() => { const n = performance.now(); const g = n - last; if (g > 5) gaps.push(Math.round(g)); max = Math.max(max, g); last = n; }, 1);
  const s = performance.now(); await store.snapshot(); const total = performance.now() - s; clearInterval(t);
  console.log(`N=${N} snapshot ${total.toFixed(0)} ms, max stall ${max.toFixed(1)} ms, gaps>5ms: ${gaps.join(',')}, rss ${(process.memoryUsage().rss/1048576).toFixed(0)} MiB`);
}
await store.close();
await rm(dir, { recursive: true, force: true });
