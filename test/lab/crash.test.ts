// The lab's core catcher (crash.ts), on real processes that die by SIGSEGV: runGet uses it so a
// `peerfill get` that crashes in a run is reported with a backtrace, not only "exit 139".
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { coreCatcher } from './crash.ts';

const SEGV = "process.kill(process.pid, 'SIGSEGV')";
const pattern = readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim();
/** A core lands in the process's cwd only with a relative pattern (the kernel's default `core`), prlimit and gdb. */
const canDump = !pattern.startsWith('/') && !pattern.startsWith('|') && existsSync('/usr/bin/prlimit') && existsSync('/usr/bin/gdb');

function run(command: string, args: string[], cwd: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

describe('coreCatcher', () => {
  it('a process killed by SIGSEGV: reported with the signal, and gdb shows where it stopped', async () => {
    const catcher = coreCatcher('segv-test');
    const [command, args] = catcher.wrap(process.execPath, ['-e', SEGV]);
    const { code, signal } = await run(command, args, catcher.cwd);
    expect(signal).toBe('SIGSEGV');
    const report = catcher.report(code, signal, process.execPath);
    try {
      expect(report).toContain('segv-test died with SIGSEGV');
      if (canDump) {
        expect(report).toMatch(/core kept at /);
        expect(report).toMatch(/node::Kill|uv_kill/);
      } else {
        expect(report).toMatch(/no core in its cwd|gdb is not installed/);
      }
    } finally {
      rmSync(catcher.cwd, { recursive: true, force: true });
    }
  });

  it('exit 139 from a wrapper (time(1), a shell) counts as SIGSEGV too', async () => {
    const catcher = coreCatcher('segv-test');
    const [command, args] = catcher.wrap('/bin/sh', ['-c', `"${process.execPath}" -e "${SEGV}"; exit $?`]);
    const { code, signal } = await run(command, args, catcher.cwd);
    expect({ code, signal }).toEqual({ code: 139, signal: null });
    const report = catcher.report(code, signal, process.execPath);
    try {
      expect(report).toContain('died with SIGSEGV');
      if (canDump) expect(report).toMatch(/node::Kill|uv_kill/);
    } finally {
      rmSync(catcher.cwd, { recursive: true, force: true });
    }
  });

  it('a clean exit, or one by SIGTERM, is no crash, and its directory is removed', async () => {
    for (const [script, expected] of [['', { code: 0, signal: null }], ["process.kill(process.pid, 'SIGTERM')", { code: null, signal: 'SIGTERM' }]] as const) {
      const catcher = coreCatcher('clean-test');
      const [command, args] = catcher.wrap(process.execPath, ['-e', script]);
      const { code, signal } = await run(command, args, catcher.cwd);
      expect({ code, signal }).toEqual(expected);
      expect(catcher.report(code, signal, process.execPath)).toBeUndefined();
      expect(existsSync(catcher.cwd)).toBe(false);
      expect(existsSync(dirname(catcher.cwd))).toBe(true);
    }
  });
});
