#!/usr/bin/env node
// The CLI runs the TypeScript sources without a build step: at start it loads an esbuild
// bundle of bin/main.ts kept under node_modules/.cache, rebuilt whenever a source it was
// built from changed (size or mtime). Each command's modules are split into their own
// chunks, so `peerfill get` never loads fastify or the AWS SDK, and no loader thread runs
// beside the CLI (tsx's costs ~40 MB of RSS). If the cache cannot be written, tsx runs the
// sources directly.
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CACHE = join(ROOT, 'node_modules', '.cache', 'peerfill-cli');
const INDEX = join(CACHE, 'current.json');

/** The cached bundle's entry, if every input is as it was when it was built. */
async function cachedEntry() {
  try {
    const index = JSON.parse(await readFile(INDEX, 'utf8'));
    // A bundle from before this file was one of the inputs: its build options are unknown.
    if (!('bin/peerfill.mjs' in index.inputs)) return undefined;
    const checks = Object.entries(index.inputs).map(async ([path, [size, mtimeMs]]) => {
      const info = await stat(join(ROOT, path));
      return info.size === size && info.mtimeMs === mtimeMs;
    });
    if (!(await Promise.all(checks)).every(Boolean)) return undefined;
    const entry = join(CACHE, index.dir, 'main.js');
    await stat(entry);
    return entry;
  } catch {
    return undefined;
  }
}

/**
 * Packages stay outside the bundle and load from node_modules, except those bundled in:
 * @sinclair/typebox ships as some 220 small ES modules, and resolving and compiling each cost
 * about 70 ms at every start (a 4 KiB `peerfill get`: 0.30 -> 0.23 s).
 */
const BUNDLED_PACKAGES = ['@sinclair/typebox'];

async function externalPackages() {
  const { dependencies = {}, devDependencies = {} } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
  return Object.keys({ ...dependencies, ...devDependencies })
    .filter((name) => !BUNDLED_PACKAGES.includes(name))
    .flatMap((name) => [name, `${name}/*`]);
}

async function buildEntry() {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [join(ROOT, 'bin', 'main.ts')],
    absWorkingDir: ROOT,
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: await externalPackages(),
    outdir: join(CACHE, 'out'),
    write: false,
    metafile: true,
    logLevel: 'error',
    plugins: [
      {
        // Each module keeps its own import.meta.url, so `new URL('./x', import.meta.url)`
        // (workers, the browser sources) still points beside its source file.
        name: 'source-import-meta-url',
        setup(builder) {
          builder.onLoad({ filter: /\.ts$/ }, async ({ path }) => ({
            contents: (await readFile(path, 'utf8')).replaceAll('import.meta.url', JSON.stringify(pathToFileURL(path).href)),
            loader: 'ts',
          }));
        },
      },
    ],
  });
  const { createHash } = await import('node:crypto');
  const hash = createHash('sha256');
  for (const file of result.outputFiles) hash.update(relative(join(CACHE, 'out'), file.path)).update(file.contents);
  const name = hash.digest('hex').slice(0, 16);
  const dir = join(CACHE, name);
  // Several processes may build at once: each writes its own temporary folder, then renames.
  const tmp = `${dir}.${process.pid}.tmp`;
  for (const file of result.outputFiles) {
    const target = join(tmp, relative(join(CACHE, 'out'), file.path));
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, file.contents);
  }
  await rename(tmp, dir).catch(() => rm(tmp, { recursive: true, force: true }));
  const inputs = {};
  // Our sources, this file (the build options), and for the bundled packages the lock file:
  // checking each of their files at every start would cost what bundling them saves.
  const sources = Object.keys(result.metafile.inputs).filter((path) => !path.startsWith('node_modules/'));
  await Promise.all(
    [...sources, 'bin/peerfill.mjs', 'package.json', 'package-lock.json'].map(async (path) => {
      const info = await stat(resolve(ROOT, path));
      inputs[relative(ROOT, resolve(ROOT, path))] = [info.size, info.mtimeMs];
    }),
  );
  const indexTmp = `${INDEX}.${process.pid}.tmp`;
  await writeFile(indexTmp, JSON.stringify({ dir: name, inputs }));
  await rename(indexTmp, INDEX);
  await pruneOldBundles(name);
  return join(dir, 'main.js');
}

/** Bundles replaced more than a day ago (a process still starting may be loading a newer-but-one). */
async function pruneOldBundles(keep) {
  const { readdir } = await import('node:fs/promises');
  const dayAgo = Date.now() - 86_400_000;
  for (const name of await readdir(CACHE)) {
    if (name === keep || name === 'current.json') continue;
    const path = join(CACHE, name);
    const info = await stat(path).catch(() => undefined);
    if (info && info.mtimeMs < dayAgo) await rm(path, { recursive: true, force: true });
  }
}

let entry = await cachedEntry();
if (!entry) {
  try {
    await mkdir(CACHE, { recursive: true });
    entry = await buildEntry();
  } catch (error) {
    if (process.env.PEERFILL_DEBUG) console.error(`peerfill: bundling failed, running the sources through tsx (${error.message})`);
  }
}
if (entry) {
  await import(pathToFileURL(entry).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./main.ts');
}
