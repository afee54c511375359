import { constants } from 'node:fs';
import { access, stat, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { PfError, type Manifest } from '../../protocol/index.ts';
import { verifyChunk, type ChunkHasher } from '../verify.ts';
import { SeedFileStore } from './seed-file-store.ts';
import { toStorageError } from './storage-error.ts';

/**
 * Where `get` writes: `-o` as given, or inside it under the file's own name when it names a
 * folder (`DIR/`, or a folder that exists), as `wget -P` does; without `-o`, the file's name here.
 */
export async function resolveOutput(requested: string | undefined, fileName: () => Promise<string>): Promise<string> {
  if (requested === undefined) return resolve(await fileName());
  const isFolder = /[/\\]$/.test(requested) || (await stat(requested).then((s) => s.isDirectory(), () => false));
  return isFolder ? resolve(requested, await fileName()) : resolve(requested);
}

/** The folder OUT goes into must exist and take writes: said before anything is fetched. */
export async function checkOutputFolder(outPath: string): Promise<void> {
  try {
    await access(dirname(outPath), constants.W_OK);
  } catch (error) {
    throw await toStorageError(error, outPath, 0);
  }
}

export type ExistingOutput = { kind: 'none' } | { kind: 'finished' } | { kind: 'other'; matchingChunks: number; chunkCount: number };

/** What OUT holds already, checked locally against the manifest: nothing, this very file, or another one. */
export async function existingOutput(outPath: string, manifest: Manifest, hashChunk: ChunkHasher): Promise<ExistingOutput> {
  const info = await stat(outPath).catch(() => undefined);
  if (!info) return { kind: 'none' };
  if (!info.isFile()) throw new PfError('PF_ERR_OUTPUT_EXISTS', `${outPath} exists and is not a regular file`);
  const store = new SeedFileStore(outPath);
  try {
    const have = await store.open(manifest, (index, bytes) => verifyChunk(manifest, index, bytes, hashChunk));
    return have.isComplete() ? { kind: 'finished' } : { kind: 'other', matchingChunks: have.count(), chunkCount: have.length };
  } finally {
    await store.close();
  }
}

/** A finished output needs no .part or state beside it (a kill between publish and clean-up leaves them). */
export async function removeLeftovers(outPath: string): Promise<void> {
  for (const suffix of ['.part', '.part.state', '.part.state.tmp']) await unlink(`${outPath}${suffix}`).catch(() => undefined);
}
