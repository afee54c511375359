import type { ErrorCode } from '../../protocol/index.ts';

/** Exit codes of `peerfill get` and `peerfill seed` (listed in the README). */
export const EXIT_CODES = {
  /** Downloaded and verified (or seeded until stopped). */
  OK: 0,
  /** Any other failure. */
  ERROR: 1,
  /** Bad command line. */
  USAGE: 2,
  /** Integrity: the manifest, or the assembled file's SHA-256, is wrong; or the file to seed does not match. */
  INTEGRITY: 3,
  /** The server or the data plane kept failing (unreachable, 5xx, lying Range answers). */
  NETWORK: 4,
  /** No such file (or session) on the server. */
  NOT_FOUND: 5,
  /** Local storage failed (disk full, read-only, permissions, missing folder): nothing more was fetched. */
  STORAGE: 6,
  /** Another `peerfill get` (the pid is named) is downloading to the same output. */
  BUSY: 7,
  /** The output exists and is not this file: not overwritten without --force. */
  EXISTS: 8,
  /** Interrupted by SIGINT/SIGTERM/SIGHUP/SIGQUIT: state saved and session paused; run the same command again to resume. */
  PAUSED: 130,
} as const;

export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

export function exitCodeFor(code: ErrorCode | undefined): ExitCode {
  switch (code) {
    case 'PF_ERR_MANIFEST_INVALID':
    case 'PF_ERR_FILE_HASH_MISMATCH':
    case 'PF_ERR_CHUNK_HASH_MISMATCH':
      return EXIT_CODES.INTEGRITY;
    case 'PF_ERR_FILE_NOT_FOUND':
    case 'PF_ERR_NOT_FOUND':
    case 'PF_ERR_SESSION_NOT_FOUND':
      return EXIT_CODES.NOT_FOUND;
    case 'PF_ERR_UPSTREAM':
    case 'PF_ERR_HTTP_RANGE_MISMATCH':
    case 'PF_ERR_URL_EXPIRED':
    case 'PF_ERR_SIGNATURE_INVALID':
    case 'PF_ERR_RATE_LIMITED':
    case 'PF_ERR_STORE_UNAVAILABLE':
      return EXIT_CODES.NETWORK;
    case 'PF_ERR_STORAGE_QUOTA':
    case 'PF_ERR_STORAGE_FAILED':
      return EXIT_CODES.STORAGE;
    case 'PF_ERR_OUTPUT_LOCKED':
      return EXIT_CODES.BUSY;
    case 'PF_ERR_OUTPUT_EXISTS':
      return EXIT_CODES.EXISTS;
    case 'PF_ERR_BAD_REQUEST':
    case 'PF_ERR_CONFIG':
      return EXIT_CODES.USAGE;
    default:
      return EXIT_CODES.ERROR;
  }
}
