import { describe, expect, it } from 'vitest';
import { pageContentSecurityPolicy, pageOptionsFrom } from '../../bin/page.ts';

describe("the page's Content-Security-Policy", () => {
  it('allows connections to the tracker socket and the CDN, and nothing inline or eval', () => {
    const policy = pageContentSecurityPolicy(pageOptionsFrom({ serverUrl: 'https://dl.example.org/', publicUrl: 'https://cdn.example.net/base', s3: undefined }));
    expect(policy).toBe(
      "default-src 'self'; connect-src 'self' wss://dl.example.org https://cdn.example.net; base-uri 'none'; object-src 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    expect(policy).not.toMatch(/unsafe|\*/);
  });

  it('names one origin once, and S3 only when it presigns', () => {
    const s3 = { bucket: 'b', prefix: '', endpoint: 'http://127.0.0.1:4569', region: 'us-east-1', forcePathStyle: true };
    const same = { serverUrl: 'http://10.0.0.5:8080', publicUrl: 'http://10.0.0.5:8080' };
    expect(pageContentSecurityPolicy(pageOptionsFrom({ ...same, s3: { ...s3, presign: false } }))).toContain("connect-src 'self' ws://10.0.0.5:8080 http://10.0.0.5:8080;");
    expect(pageContentSecurityPolicy(pageOptionsFrom({ ...same, s3: { ...s3, presign: true } }))).toContain('http://10.0.0.5:8080 http://127.0.0.1:4569;');
    expect(pageContentSecurityPolicy(pageOptionsFrom({ ...same, s3: { ...s3, endpoint: undefined, presign: true } }))).toContain('https://*.amazonaws.com;');
  });
});
