// Chunk hashing off the main thread (see manifest-builder.ts). Plain JS so that a worker
// starts the same way under node, tsx and vitest, with no TypeScript loader to inherit.
// In:  { build, chunk, bytes: Uint8Array (its buffer transferred), isLast }
// Out: { build, chunk, sha256 (when isLast), bytes }  — the buffer goes back to the pool.
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

const open = new Map();
let currentBuild = -1;

parentPort.on('message', ({ build, chunk, bytes, isLast }) => {
  // Builds run one at a time; a new build id drops whatever an aborted build left behind.
  if (build !== currentBuild) {
    open.clear();
    currentBuild = build;
  }
  const hash = open.get(chunk) ?? createHash('sha256');
  hash.update(bytes);
  const reply = { build, chunk, bytes };
  if (isLast) {
    reply.sha256 = hash.digest('hex');
    open.delete(chunk);
  } else {
    open.set(chunk, hash);
  }
  parentPort.postMessage(reply, [bytes.buffer]);
});
