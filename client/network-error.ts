import { PfError } from '../protocol/index.ts';

/** Node's and the TLS stack's error codes, said in plain words (with the code kept for searching). */
const PLAIN_WORDS: ReadonlyArray<[RegExp, (where: string) => string, 'lost' | 'wrong-url']> = [
  [/^ECONNREFUSED$/, (where) => `nothing is listening at ${where} (connection refused)`, 'lost'],
  [/^(ENOTFOUND|EAI_AGAIN|EAI_NONAME)$/, (where) => `cannot find the host ${where.replace(/:\d+$/, '')} (DNS)`, 'lost'],
  [/^(ETIMEDOUT|ECONNABORTED)$/, (where) => `${where} did not answer in time`, 'lost'],
  [/^(ECONNRESET|EPIPE)$/, (where) => `${where} closed the connection`, 'lost'],
  [/^(EHOSTUNREACH|ENETUNREACH|ENETDOWN|EHOSTDOWN)$/, (where) => `no route to ${where} (is the network down?)`, 'lost'],
  [/^(ERR_SSL_WRONG_VERSION_NUMBER|ERR_SSL_PACKET_LENGTH_TOO_LONG|ERR_SSL_HTTP_REQUEST)$/, (where) => `${where} does not speak TLS: use http:// instead of https://`, 'wrong-url'],
  [/^HPE_/, (where) => `${where} did not answer with HTTP (a TLS port? then use https://)`, 'wrong-url'],
  [
    /^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_TLS_CERT_ALTNAME_INVALID)/,
    (where) => `the TLS certificate of ${where} is not trusted`,
    'wrong-url',
  ],
];

/**
 * Why `url` could not be reached, in plain words (the raw message where the cause is not one
 * we know), as a PfError: PF_ERR_UPSTREAM when the server or the network is away (worth
 * waiting for), PF_ERR_BAD_REQUEST when the URL itself is wrong (https:// to a plain port, an
 * untrusted certificate): no wait mends that.
 */
export function networkError(error: unknown, url: string): PfError {
  const where = hostOf(url);
  const code = errorCode(error);
  const rule = code === undefined ? undefined : PLAIN_WORDS.find(([pattern]) => pattern.test(code));
  // A timeout of ours (not the kernel's) says how long it waited: --timeout is the knob.
  const waitedMs = code === 'ETIMEDOUT' ? timeoutOf(error) : undefined;
  if (waitedMs !== undefined) return new PfError('PF_ERR_UPSTREAM', `${where} did not answer for ${formatSeconds(waitedMs)} s (--timeout) [${code}]`, { cause: error });
  if (rule) return new PfError(rule[2] === 'lost' ? 'PF_ERR_UPSTREAM' : 'PF_ERR_BAD_REQUEST', `${rule[1](where)} [${code}]`, { cause: error });
  const message = error instanceof Error ? error.message : String(error);
  // OpenSSL's own text, as Node passes it on where it sets no code.
  if (/wrong version number|packet length too long|http request/i.test(message)) {
    return new PfError('PF_ERR_BAD_REQUEST', `${where} does not speak TLS: use http:// instead of https://`, { cause: error });
  }
  return new PfError('PF_ERR_UPSTREAM', `cannot reach ${where}: ${message}`, { cause: error });
}

/** The wait a timeout error of ours carries (`timeoutMs`), if any. */
function timeoutOf(error: unknown): number | undefined {
  for (let current = error, depth = 0; typeof current === 'object' && current !== null && depth < 4; depth++) {
    if ('timeoutMs' in current && typeof current.timeoutMs === 'number') return current.timeoutMs;
    current = 'cause' in current ? current.cause : undefined;
  }
  return undefined;
}

/** Seconds as a user wrote them: 15, 2.5. */
export function formatSeconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}

function errorCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; typeof current === 'object' && current !== null && depth < 4; depth++) {
    if ('code' in current && typeof current.code === 'string') return current.code;
    current = 'cause' in current ? current.cause : undefined;
  }
  return undefined;
}

function hostOf(url: string): string {
  try {
    const parsed = new URL(url);
    return parsed.host || url;
  } catch {
    return url;
  }
}
