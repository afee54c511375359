// The whole-file SHA-256 of a download, off its main thread (see hash-thread.ts). Plain JS,
// like origin/publish/hash-worker.mjs, so it starts the same way under node, the CLI bundle and vitest.
// Every message is answered, in order:
//   { op: 'bytes', id, stream, slot: SharedArrayBuffer, length }  bytes the main thread copied in
//   { op: 'file', id, stream, path, start, end }                   bytes [start, end) read from path here
//   { op: 'digest', id, stream }                                   -> { id, sha256 }
// A failure answers { id, error }.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';

const READ_BYTES = 4 * 1024 * 1024;
const streams = new Map();
let readBuffer;

function stream(id) {
  let entry = streams.get(id);
  if (entry === undefined) {
    entry = { hash: createHash('sha256'), fd: undefined, path: undefined };
    streams.set(id, entry);
  }
  return entry;
}

function hashFileRange(entry, path, start, end) {
  if (entry.path !== path) {
    if (entry.fd !== undefined) closeSync(entry.fd);
    entry.fd = openSync(path, 'r');
    entry.path = path;
  }
  readBuffer ??= Buffer.allocUnsafe(READ_BYTES);
  for (let position = start; position < end; ) {
    const read = readSync(entry.fd, readBuffer, 0, Math.min(READ_BYTES, end - position), position);
    if (read === 0) throw new Error(`${path} ends at ${position}, before ${end}`);
    entry.hash.update(readBuffer.subarray(0, read));
    position += read;
  }
}

function close(id) {
  const entry = streams.get(id);
  streams.delete(id);
  if (entry?.fd !== undefined) closeSync(entry.fd);
  return entry;
}

parentPort.on('message', (message) => {
  try {
    switch (message.op) {
      case 'bytes':
        stream(message.stream).hash.update(new Uint8Array(message.slot, 0, message.length));
        parentPort.postMessage({ id: message.id });
        break;
      case 'file':
        hashFileRange(stream(message.stream), message.path, message.start, message.end);
        parentPort.postMessage({ id: message.id });
        break;
      case 'digest': {
        const entry = close(message.stream);
        parentPort.postMessage({ id: message.id, sha256: (entry?.hash ?? createHash('sha256')).digest('hex') });
        break;
      }
      default:
        parentPort.postMessage({ id: message.id, error: `unknown op ${String(message.op)}` });
    }
  } catch (error) {
    close(message.stream);
    parentPort.postMessage({ id: message.id, error: error instanceof Error ? error.message : String(error) });
  }
});
