import { readFile, readdir } from 'node:fs/promises';

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these ticks on every architecture node runs on. */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  ppid: number;
  cpuSeconds: number;
}

async function procStat(pid: number): Promise<ProcStat | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  // Field 2 (comm) is in parentheses and may hold spaces: split after its closing one.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // Fields 4 (ppid), 14 (utime) and 15 (stime) of proc(5), counted from the state field (3).
  return { ppid: Number(fields[1]), cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND };
}

/** CPU-seconds (user + system) used so far by `pid` and every live process below it (nginx workers, cluster workers). */
export async function treeCpuSeconds(pid: number): Promise<number> {
  const stats = new Map<number, ProcStat>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await procStat(Number(name));
    if (stat) stats.set(Number(name), stat);
  }
  const inTree = (candidate: number): boolean => {
    for (let current = candidate, hops = 0; current > 1 && hops < 64; hops++) {
      if (current === pid) return true;
      current = stats.get(current)?.ppid ?? 0;
    }
    return false;
  };
  let total = 0;
  for (const [candidate, stat] of stats) if (inTree(candidate)) total += stat.cpuSeconds;
  return total;
}
