import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { PfError, createCodec, parseJson } from '../../protocol/index.ts';

/** Files registered with `peerfill add` that the folder/bucket scan would not find by itself. */
const AddedSourceSchema = Type.Union([
  Type.Object({ kind: Type.Literal('path'), path: Type.String({ minLength: 1 }), private: Type.Optional(Type.Boolean()) }),
  Type.Object({ kind: Type.Literal('s3'), bucket: Type.String({ minLength: 1 }), key: Type.String({ minLength: 1 }), private: Type.Optional(Type.Boolean()) }),
]);
export type AddedSource = Static<typeof AddedSourceSchema>;
const AddedFileCodec = createCodec(Type.Object({ v: Type.Literal(1), sources: Type.Array(AddedSourceSchema) }));

const FILE_NAME = 'added-files.json';

export function sameSource(a: AddedSource, b: AddedSource): boolean {
  if (a.kind === 'path' && b.kind === 'path') return a.path === b.path;
  if (a.kind === 's3' && b.kind === 's3') return a.bucket === b.bucket && a.key === b.key;
  return false;
}

/** `s3://bucket/key` -> its parts, or undefined when it is not an S3 URL. */
export function parseS3Url(value: string): { bucket: string; key: string } | undefined {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(value);
  return match ? { bucket: match[1]!, key: match[2]! } : undefined;
}

export async function readAddedSources(dataDir: string): Promise<AddedSource[]> {
  let text: string;
  try {
    text = await readFile(join(dataDir, FILE_NAME), 'utf8');
  } catch {
    return [];
  }
  const parsed = parseJson(text);
  const decoded = parsed.ok ? AddedFileCodec.decode(parsed.value) : parsed;
  if (!decoded.ok) throw new PfError('PF_ERR_CONFIG', `${join(dataDir, FILE_NAME)} is invalid: ${decoded.errors.join('; ')}`);
  return decoded.value.sources;
}

/** Record (or update the visibility of) an added file. */
export async function rememberAddedSource(dataDir: string, source: AddedSource): Promise<void> {
  const sources = await readAddedSources(dataDir);
  const index = sources.findIndex((existing) => sameSource(existing, source));
  if (index >= 0 && sources[index]!.private === source.private) return;
  if (index >= 0) sources[index] = source;
  else sources.push(source);
  await mkdir(dataDir, { recursive: true });
  const temporary = join(dataDir, `.${FILE_NAME}.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(temporary, `${JSON.stringify({ v: 1, sources }, null, 2)}\n`);
  await rename(temporary, join(dataDir, FILE_NAME));
}
