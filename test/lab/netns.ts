import { execFileSync } from 'node:child_process';
import { run } from './command.ts';

/** Every lab namespace starts with this, then the owning run's pid: `pflab<pid>-<n>-<role>`. */
export const NETNS_PREFIX = 'pflab';
const NETNS_PATTERN = new RegExp(`^${NETNS_PREFIX}(\\d+)-`);

export function labNetnsName(labNumber: number, role: string): string {
  return `${NETNS_PREFIX}${process.pid}-${labNumber}-${role}`;
}

/** Names from `ip netns list`, whose lines look like `name (id: 3)` or just `name`. */
export function parseNetnsList(stdout: string): string[] {
  return stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name.length > 0);
}

export async function listNetns(): Promise<string[]> {
  return parseNetnsList((await run('ip', ['netns', 'list'])).stdout);
}

/** The pid a lab namespace is named after, or undefined for namespaces that are not the lab's. */
export function ownerPid(netns: string): number | undefined {
  const digits = NETNS_PATTERN.exec(netns)?.[1];
  return digits === undefined ? undefined : Number(digits);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else; still alive.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Delete namespaces left by runs that died before their close() or exit handler ran. */
export async function removeStaleNetns(): Promise<string[]> {
  const stale = (await listNetns()).filter((netns) => {
    const pid = ownerPid(netns);
    return pid !== undefined && pid !== process.pid && !isAlive(pid);
  });
  await deleteNetns(stale);
  return stale;
}

/** Delete namespaces in one `ip -batch` (-force: one that is already gone does not stop the rest). */
export async function deleteNetns(names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  await run('ip', ['-force', '-batch', '-'], names.map((name) => `netns delete ${name}\n`).join('')).catch(() => undefined);
}

/** For the process 'exit' handler, where nothing asynchronous runs any more. */
export function deleteNetnsSync(names: readonly string[]): void {
  if (names.length === 0) return;
  try {
    execFileSync('ip', ['-force', '-batch', '-'], { input: names.map((name) => `netns delete ${name}\n`).join(''), stdio: ['pipe', 'ignore', 'ignore'] });
  } catch {
    // Best effort: whatever is left is removed by the next run's removeStaleNetns().
  }
}
