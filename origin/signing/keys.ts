import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import { KeyIdSchema, PfError, createCodec, parseJson, parseSigningKeys, type SigningKey } from '../../protocol/index.ts';

const KEY_FILE = 'signing-key.json';
const KeyFileCodec = createCodec(Type.Object({ kid: KeyIdSchema, secret: Type.String({ minLength: 16 }) }));

/**
 * The signing keys: the configured ones (PEERFILL_SIGNING_KEYS), else one generated key
 * kept at `<dataDir>/signing-key.json` (mode 0600) so that restarts, `peerfill sign` and
 * every worker process agree. The stored secret is used as its UTF-8 bytes, exactly like a
 * configured one, so it can be moved into PEERFILL_SIGNING_KEYS as `kid:secret`.
 */
export async function loadSigningKeys(dataDir: string, configured: readonly SigningKey[] | undefined, logger: Logger): Promise<SigningKey[]> {
  if (configured && configured.length > 0) return [...configured];
  const path = join(dataDir, KEY_FILE);
  const existing = await readKeyFile(path);
  if (existing) return [existing];
  await mkdir(dataDir, { recursive: true });
  const kid = `local-${randomBytes(4).toString('hex')}`;
  const secret = randomBytes(32).toString('base64url');
  try {
    // 'wx': when two processes start at once, the first write wins and the other reads it.
    await writeFile(path, `${JSON.stringify({ kid, secret })}\n`, { flag: 'wx', mode: 0o600 });
    logger.info({ kid, path }, 'generated a signing key (set PEERFILL_SIGNING_KEYS to choose your own)');
  } catch (error) {
    if (!(error instanceof Error && 'code' in error && error.code === 'EEXIST')) throw error;
  }
  const stored = await readKeyFile(path);
  if (!stored) throw new PfError('PF_ERR_CONFIG', `${path} is not a valid signing key file`);
  return [stored];
}

async function readKeyFile(path: string): Promise<SigningKey | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  const parsed = parseJson(text);
  const decoded = parsed.ok ? KeyFileCodec.decode(parsed.value) : parsed;
  if (!decoded.ok) throw new PfError('PF_ERR_CONFIG', `${path} is not a valid signing key file`);
  const keys = parseSigningKeys(`${decoded.value.kid}:${decoded.value.secret}`);
  if (!keys.ok) throw new PfError('PF_ERR_CONFIG', `${path}: ${keys.errors.join('; ')}`);
  return keys.keys[0];
}
