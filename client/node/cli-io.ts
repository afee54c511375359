/** What the CLI entry points get from bin/: streams and the environment (tests pass their own). */
export interface CliIo {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown; isTTY?: boolean };
  env: Record<string, string | undefined>;
  /** Where SIGINT/SIGTERM are delivered [process]. */
  signals?: { once(signal: 'SIGINT' | 'SIGTERM', listener: () => void): unknown; off(signal: 'SIGINT' | 'SIGTERM', listener: () => void): unknown };
}
