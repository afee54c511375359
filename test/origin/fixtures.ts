import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { fillPattern } from '../support/bytes.ts';
import { freePort } from '../support/net.ts';
export { freePort };

export async function tempDir(label: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `pf-origin-${label}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** Deterministic pseudo-random bytes (so failures reproduce). */
export function patternBytes(length: number, seed = 1): Buffer {
  return fillPattern(Buffer.allocUnsafe(length), seed);
}

export async function writeFiles(root: string, files: Record<string, Uint8Array | string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    const path = join(root, ...name.split('/'));
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
  }
}

export interface S3Fixture {
  endpoint: string;
  bucket: string;
  client: S3Client;
  put(key: string, body: Uint8Array | string): Promise<void>;
  close(): Promise<void>;
}

/** s3rver on a free loopback port with a temp directory; it does not check signatures. */
export async function startS3(): Promise<S3Fixture> {
  const dir = await tempDir('s3rver');
  const bucket = 'peerfill-test';
  // The SDK's default credential chain reads these; s3rver accepts any signature.
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir.path, allowMismatchedSignatures: true, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true });
  return {
    endpoint,
    bucket,
    client,
    async put(key, body) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: typeof body === 'string' ? Buffer.from(body) : body }));
    },
    async close() {
      client.destroy();
      await server.close();
      await dir.cleanup();
    },
  };
}

export interface NginxFixture {
  baseUrl: string;
  stop(): Promise<void>;
}

export const NGINX_BINARY = '/usr/sbin/nginx';

/** Debian's nginx on a free loopback port, serving `root` with a throwaway config and prefix. */
export async function startNginx(root: string, extraHttpConfig = ''): Promise<NginxFixture> {
  const dir = await tempDir('nginx');
  // mkdtemp makes 0700 directories; nginx workers run as an unprivileged user when we are root.
  await chmod(root, 0o755);
  const port = await freePort();
  const conf = `
worker_processes 1;
error_log ${dir.path}/error.log warn;
pid ${dir.path}/nginx.pid;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir.path}/body;
  proxy_temp_path ${dir.path}/proxy;
  fastcgi_temp_path ${dir.path}/fastcgi;
  uwsgi_temp_path ${dir.path}/uwsgi;
  scgi_temp_path ${dir.path}/scgi;
  default_type application/octet-stream;
  sendfile on;
  ${extraHttpConfig}
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`;
  await writeFile(join(dir.path, 'nginx.conf'), conf);
  const child: ChildProcess = spawn(NGINX_BINARY, ['-p', dir.path, '-c', join(dir.path, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (data: Buffer) => (stderr += data.toString()));
  const baseUrl = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    try {
      await fetch(`${baseUrl}/`, { method: 'HEAD' });
      break;
    } catch {
      if (attempt > 200) throw new Error(`nginx did not start: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  return {
    baseUrl,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await dir.cleanup();
    },
  };
}

export function randomKey(): string {
  return randomBytes(24).toString('base64url');
}
