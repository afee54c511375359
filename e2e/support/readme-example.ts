import { readFileSync } from 'node:fs';

const README = new URL('../../README.md', import.meta.url);
const EXAMPLE_SERVER = 'https://files.example.com';

/**
 * The README's embedding example, read from the README itself (the module script under
 * "Embedding peerfill in your page"), with the server's URL and a file id filled in.
 */
export function readmeExample(serverUrl: string, fileId: string): string {
  const text = readFileSync(README, 'utf8');
  const section = text.slice(text.indexOf('### Embedding peerfill'));
  const found = /<script type="module">\n([\s\S]*?)<\/script>/.exec(section);
  if (!found?.[1]) throw new Error('README.md has no embedding example under "Embedding peerfill in your page"');
  return found[1].replaceAll(EXAMPLE_SERVER, serverUrl).replace('FILE_ID', fileId);
}
