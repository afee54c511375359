import { open, readFile, rename, unlink } from 'node:fs/promises';
import { PfError } from '../../protocol/index.ts';
import { toStorageError } from './storage-error.ts';

export interface OutputLock {
  readonly path: string;
  release(): Promise<void>;
}

/**
 * `OUT.part.lock`, holding the pid of the one `peerfill get` that writes OUT. A second get
 * is refused with that pid; a lock whose process is gone is taken over.
 */
export async function lockOutput(outPath: string): Promise<OutputLock> {
  const path = `${outPath}.part.lock`;
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      const handle = await open(path, 'wx');
      try {
        await handle.writeFile(`${process.pid}\n`);
      } finally {
        await handle.close();
      }
      return { path, release: () => unlink(path).catch(() => undefined) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw await toStorageError(error, path, 0);
    }
    const holder = await holderOf(path);
    if (holder === undefined || isAlive(holder)) {
      // An unreadable or empty lock is one being written this instant: as good as held.
      throw new PfError('PF_ERR_OUTPUT_LOCKED', `another peerfill get (pid ${holder ?? '?'}) is downloading ${outPath}`);
    }
    // Stale: moved aside first, so that of two takers only one removes it (and not a fresh lock).
    const aside = `${path}.stale-${process.pid}`;
    if (await rename(path, aside).then(() => true, () => false)) {
      const moved = await holderOf(aside);
      if (moved !== holder && moved !== undefined && isAlive(moved)) {
        await rename(aside, path).catch(() => undefined);
        throw new PfError('PF_ERR_OUTPUT_LOCKED', `another peerfill get (pid ${moved}) is downloading ${outPath}`);
      }
      await unlink(aside).catch(() => undefined);
    }
  }
  throw new PfError('PF_ERR_OUTPUT_LOCKED', `another peerfill get is downloading ${outPath}`);
}

async function holderOf(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
