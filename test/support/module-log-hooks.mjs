// Loader hooks for module-log.mjs; they run on node's hooks thread.
import { appendFileSync } from 'node:fs';

let logPath;

export function initialize(data) {
  logPath = data.logPath;
}

export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  appendFileSync(logPath, `${url}\n`);
  return result;
}
