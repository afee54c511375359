import { execFile } from 'node:child_process';
import { LabError } from './lab-error.ts';

export interface CommandOutput {
  stdout: string;
  stderr: string;
}

/**
 * Run `command` to completion; reject with its stderr on a non-zero exit. `input` is written to
 * stdin, which is how `ip -batch -` and `tc -batch -` take many commands in one process.
 */
export function run(command: string, args: string[], input?: string): Promise<CommandOutput> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        const detail = stderr.trim() || error.message;
        reject(new LabError('PF_ERR_LAB_COMMAND', `${command} ${args.join(' ')} failed: ${detail}`, { cause: error }));
        return;
      }
      resolve({ stdout, stderr });
    });
    // An unwritable stdin shows up as the command's own failure above; do not crash on EPIPE.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}
