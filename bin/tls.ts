import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ConfigError } from './config.ts';

/** `--tls-cert` and `--tls-key` as given: PEM files, read when the server starts. */
export interface TlsFiles {
  certPath: string;
  keyPath: string;
}

/** What node's TLS server takes: the certificate (chain) and its private key, PEM. */
export interface TlsCredentials {
  cert: Buffer;
  key: Buffer;
}

const CERT_OPTION = '--tls-cert / PEERFILL_TLS_CERT';
const KEY_OPTION = '--tls-key / PEERFILL_TLS_KEY';

function readReason(error: unknown): string {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a folder, not a file';
  return (error as Error).message;
}

async function readPem(option: string, path: string, errors: string[]): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    errors.push(`${option}: cannot read ${path}: ${readReason(error)}`);
    return undefined;
  }
}

/**
 * Read and check the certificate and key before anything listens: a missing or unreadable
 * file, a file that is not a PEM certificate or key, and a key that does not belong to the
 * certificate are ConfigErrors (exit 2) naming the path, never a TLS stack trace at the first
 * connection. The first certificate of a chain file is the one the key must match.
 */
export async function loadTlsCredentials(files: TlsFiles): Promise<TlsCredentials> {
  const errors: string[] = [];
  const [cert, key] = [await readPem(CERT_OPTION, files.certPath, errors), await readPem(KEY_OPTION, files.keyPath, errors)];
  let certificate: X509Certificate | undefined;
  let privateKey: KeyObject | undefined;
  if (cert) {
    try {
      certificate = new X509Certificate(cert);
    } catch {
      errors.push(`${CERT_OPTION}: ${files.certPath} is not a PEM certificate`);
    }
  }
  if (key) {
    try {
      privateKey = createPrivateKey(key);
    } catch {
      errors.push(`${KEY_OPTION}: ${files.keyPath} is not a PEM private key (an encrypted key is not supported)`);
    }
  }
  if (certificate && privateKey && !certificate.checkPrivateKey(privateKey)) {
    errors.push(`${KEY_OPTION}: the key in ${files.keyPath} does not belong to the certificate in ${files.certPath}`);
  }
  if (errors.length > 0 || !cert || !key) throw new ConfigError(errors);
  return { cert, key };
}
