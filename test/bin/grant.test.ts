import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseSigningKeys, verifyGrant } from '../../protocol/index.ts';

const CLI = new URL('../../bin/peerfill.mjs', import.meta.url).pathname;
const KEYS = 'pub1:publisher-grant-secret-0123456789';

function peerfill(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, PEERFILL_PUBLISHER_KEYS: '', ...env } });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, out, err })));
}

describe('peerfill grant (real process)', () => {
  it('prints a grant for one user and file that the server-side check accepts until it expires', async () => {
    const fileId = 'AbCdEfGhIjKlMnOpQrStUv';
    const result = await peerfill(['grant', fileId, '--user', 'alice@example.com', '--expires-in', '120'], { PEERFILL_PUBLISHER_KEYS: KEYS });
    expect(result.err).toBe('');
    expect(result.code).toBe(0);
    const grant = result.out.trim();
    const keys = parseSigningKeys(KEYS);
    if (!keys.ok) throw new Error('bad test keys');
    const now = Math.floor(Date.now() / 1000);
    expect(await verifyGrant(keys.keys, grant, fileId, now)).toEqual({ ok: true, user: 'alice@example.com', kid: 'pub1' });
    expect(await verifyGrant(keys.keys, grant, 'ZZCdEfGhIjKlMnOpQrStUv', now)).toEqual({ ok: false, reason: 'other_file' });
    expect(await verifyGrant(keys.keys, grant, fileId, now + 121)).toEqual({ ok: false, reason: 'expired' });
  });

  it('needs PEERFILL_PUBLISHER_KEYS and a --user, with exit code 2', async () => {
    const noKey = await peerfill(['grant', 'AbCdEfGhIjKlMnOpQrStUv', '--user', 'u'], {});
    expect(noKey.code).toBe(2);
    expect(noKey.err).toContain('PEERFILL_PUBLISHER_KEYS is required');
    const noUser = await peerfill(['grant', 'AbCdEfGhIjKlMnOpQrStUv'], { PEERFILL_PUBLISHER_KEYS: KEYS });
    expect(noUser.code).toBe(2);
    expect(noUser.err).toContain('usage: peerfill grant');
  });
});
