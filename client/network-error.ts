/** Node's and the TLS stack's error codes, said in plain words (with the code kept for searching). */
const PLAIN_WORDS: ReadonlyArray<[RegExp, (where: string) => string]> = [
  [/^ECONNREFUSED$/, (where) => `nothing is listening at ${where} (connection refused)`],
  [/^(ENOTFOUND|EAI_AGAIN|EAI_NONAME)$/, (where) => `cannot find the host ${where.replace(/:\d+$/, '')} (DNS)`],
  [/^(ETIMEDOUT|ECONNABORTED)$/, (where) => `${where} did not answer in time`],
  [/^(ECONNRESET|EPIPE)$/, (where) => `${where} closed the connection`],
  [/^(EHOSTUNREACH|ENETUNREACH|ENETDOWN|EHOSTDOWN)$/, (where) => `no route to ${where} (is the network down?)`],
  [/^(ERR_SSL_WRONG_VERSION_NUMBER|ERR_SSL_PACKET_LENGTH_TOO_LONG|ERR_SSL_HTTP_REQUEST)$/, (where) => `${where} does not speak TLS: use http:// instead of https://`],
  [/^HPE_/, (where) => `${where} did not answer with HTTP (a TLS port? then use https://)`],
  [
    /^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_TLS_CERT_ALTNAME_INVALID)/,
    (where) => `the TLS certificate of ${where} is not trusted`,
  ],
];

/** Why `url` could not be reached, in plain words; the raw message where the cause is not one we know. */
export function describeNetworkError(error: unknown, url: string): string {
  const where = hostOf(url);
  const code = errorCode(error);
  const rule = code === undefined ? undefined : PLAIN_WORDS.find(([pattern]) => pattern.test(code));
  if (rule) return `${rule[1](where)} [${code}]`;
  const message = error instanceof Error ? error.message : String(error);
  // OpenSSL's own text, as Node passes it on where it sets no code.
  if (/wrong version number|packet length too long|http request/i.test(message)) return `${where} does not speak TLS: use http:// instead of https://`;
  return `cannot reach ${where}: ${message}`;
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
