import { describe, expect, it } from 'vitest';
import { insecurePageWarning, isSecureContextUrl, pageContentSecurityPolicy, pageOptionsFrom } from '../../bin/page.ts';

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

describe('which page URLs a browser runs as a secure context', () => {
  it('https anywhere, and plain http only at localhost, 127.0.0.0/8 or [::1]', () => {
    for (const url of ['https://10.0.0.5:8443/', 'https://dl.example.org/', 'http://localhost:8080/', 'http://app.localhost/', 'http://127.0.0.1:8080/', 'http://127.3.4.5/', 'http://[::1]:8080/', 'http://LOCALHOST./']) {
      expect(isSecureContextUrl(url), url).toBe(true);
    }
    for (const url of ['http://10.77.0.1:8080/', 'http://192.168.1.20/', 'http://dl.example.org/', 'http://[fd00::1]:8080/', 'http://localhost.example.org/', 'http://127.0.0.1.nip.io/']) {
      expect(isSecureContextUrl(url), url).toBe(false);
    }
  });

  it('serve warns about plain http at another address, naming the URL and the TLS options, and not otherwise', () => {
    const warning = insecurePageWarning('http://10.77.0.1:8080/');
    expect(warning).toContain('http://10.77.0.1:8080/ is plain HTTP at an address other than localhost');
    expect(warning).toContain('--tls-cert FILE --tls-key FILE');
    expect(insecurePageWarning('http://127.0.0.1:8080/')).toBeUndefined();
    expect(insecurePageWarning('https://10.77.0.1:8443/')).toBeUndefined();
  });
});
