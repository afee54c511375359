// A lab process that dies by a signal leaves a core and a backtrace behind, not just an exit code.
// `peerfill get` has died with SIGSEGV (exit 139) in L2 and L3 with nothing on stderr, too
// rarely to reproduce by hand: the next time, the run prints where it crashed.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PRLIMIT = ['/usr/bin/prlimit', '/bin/prlimit'].find((path) => existsSync(path));
const GDB = ['/usr/bin/gdb', '/bin/gdb'].find((path) => existsSync(path));

/** Exit codes of a process killed by a signal that dumps core (128 + SIGQUIT, SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV). */
const CORE_SIGNALS = new Map([
  [131, 'SIGQUIT'],
  [132, 'SIGILL'],
  [134, 'SIGABRT'],
  [135, 'SIGBUS'],
  [136, 'SIGFPE'],
  [139, 'SIGSEGV'],
]);

export interface CoreCatcher {
  /** The directory to run the process in: a core named relative to its cwd lands there. */
  readonly cwd: string;
  /** `command` and `args` with core dumps allowed for it (prlimit), when prlimit is installed. */
  wrap(command: string, args: string[]): [string, string[]];
  /**
   * After the process exited: undefined if it did not die by a core-dumping signal; else what
   * happened, with gdb's backtrace of the core when there is one. A core is kept (its path is
   * in the report); without one, the directory is removed.
   */
  report(exitCode: number | null, signal: NodeJS.Signals | null, executable: string): string | undefined;
}

/** The kernel's core pattern: a relative one (`core`, the default) names a file in the crashing process's cwd. */
function corePattern(): string {
  try {
    return readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

export function coreCatcher(label: string): CoreCatcher {
  const cwd = mkdtempSync(join(tmpdir(), `pf-lab-${label}-`));
  return {
    cwd,
    wrap(command, args) {
      return PRLIMIT ? [PRLIMIT, ['--core=unlimited', '--', command, ...args]] : [command, args];
    },
    report(exitCode, signal, executable) {
      const byCode = exitCode === null ? undefined : CORE_SIGNALS.get(exitCode);
      const name = signal === null ? byCode : [...CORE_SIGNALS.values()].find((known) => known === signal);
      if (name === undefined) {
        rmSync(cwd, { recursive: true, force: true });
        return undefined;
      }
      const core = readdirSync(cwd).find((file) => file === 'core' || file.startsWith('core.'));
      if (core === undefined) {
        rmSync(cwd, { recursive: true, force: true });
        const why = PRLIMIT ? `core_pattern is "${corePattern()}"` : 'prlimit is not installed';
        return `${label} died with ${name}; no core in its cwd (${why})`;
      }
      const path = join(cwd, core);
      if (!GDB) return `${label} died with ${name}; core kept at ${path} (gdb is not installed)`;
      let backtrace: string;
      try {
        backtrace = execFileSync(GDB, ['-batch', '-ex', 'bt 30', '-ex', 'thread apply all bt 8', executable, path], { encoding: 'utf8', timeout: 120_000, maxBuffer: 16 * 1024 * 1024, stdio: ['ignore', 'pipe', 'ignore'] });
      } catch (error) {
        backtrace = `gdb failed: ${error instanceof Error ? error.message : String(error)}`;
      }
      return `${label} died with ${name}; core kept at ${path}\n${backtrace}`;
    },
  };
}
