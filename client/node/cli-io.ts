/** What the CLI entry points get from bin/: streams and the environment (tests pass their own). */
export interface CliIo {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown; isTTY?: boolean };
  env: Record<string, string | undefined>;
  /** Where SIGINT/SIGTERM (and SIGHUP/SIGQUIT) are delivered [process]. */
  signals?: { on(signal: CliSignal, listener: () => void): unknown; once(signal: CliSignal, listener: () => void): unknown; off(signal: CliSignal, listener: () => void): unknown };
}

export type CliSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'SIGQUIT';
