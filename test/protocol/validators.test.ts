import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Type } from '@sinclair/typebox';
import { Check } from '@sinclair/typebox/value';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestCodec, trackerRequestCodec, validatorKey } from '../../protocol/index.ts';
import { generatedValidators } from '../../protocol/validators.generated.ts';

const run = promisify(execFile);
const GENERATOR = new URL('../../scripts/generate-validators.ts', import.meta.url).pathname;
const GENERATED = new URL('../../protocol/validators.generated.ts', import.meta.url).pathname;

/** Runs the generator in its own process, so only the shipped modules' schemas are seen. */
async function check(file: string): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await run(process.execPath, ['--import', 'tsx', GENERATOR, '--check', '--file', file]);
    return { code: 0, stderr };
  } catch (error) {
    const failed = error as { code?: number; stderr?: string };
    return { code: failed.code ?? -1, stderr: failed.stderr ?? '' };
  }
}

describe('generated validators (protocol/validators.generated.ts)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-validators-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('are current: regenerating from the shipped schemas gives the committed file', async () => {
    const result = await check(GENERATED);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('the check fails when a schema has no generated validator', async () => {
    const committed = await readFile(GENERATED, 'utf8');
    const key = validatorKey(manifestCodec.schema);
    expect(committed).toContain(`['${key}',`);
    const stale = join(dir, 'stale.ts');
    await writeFile(stale, committed.replace(`['${key}',`, `['0${key}',`));
    const result = await check(stale);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('is stale');
  });

  it('cover the protocol codecs, and agree with TypeBox on arbitrary values', () => {
    for (const codec of [manifestCodec, trackerRequestCodec]) {
      const generated = generatedValidators.get(validatorKey(codec.schema));
      expect(generated).toBeTypeOf('function');
      fc.assert(
        fc.property(fc.anything(), (value) => generated!(value) === Check(codec.schema, value)),
        { numRuns: 300 },
      );
    }
  });

  it('keys tell apart schemas whose JSON is the same but whose TypeBox Kind differs', () => {
    const json = Type.Object({ a: Type.Any() });
    const kind = Type.Object({ a: Type.Unknown() });
    expect(JSON.stringify(json)).toBe(JSON.stringify(kind));
    expect(validatorKey(json)).not.toBe(validatorKey(kind));
  });
});
