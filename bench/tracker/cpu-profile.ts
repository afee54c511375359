// A V8 .cpuprofile (node --cpu-prof) summarised: self time by category and by function.
// Shared by bench/tracker/profile.ts (one process) and bench/tracker/cluster.ts (--profile).
import { Type } from '@sinclair/typebox';
import { createCodec, parseJson } from '../../protocol/index.ts';

const profileCodec = createCodec(
  Type.Object({
    nodes: Type.Array(Type.Object({ id: Type.Integer(), callFrame: Type.Object({ functionName: Type.String(), url: Type.String(), lineNumber: Type.Integer() }) })),
    samples: Type.Array(Type.Integer()),
    timeDeltas: Type.Array(Type.Number()),
  }),
);

/** The category a sampled function's self time counts under. */
export function categoryOf(functionName: string, url: string): string {
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)') return 'V8/native (program)';
  if (/^(parse|stringify)$/.test(functionName) && url === '') return 'JSON';
  // `peerfill` (bin/peerfill.mjs) runs a bundle of our sources from node_modules/.cache.
  if (url.includes('/node_modules/.cache/peerfill-cli/')) return 'our code (the CLI bundle)';
  if (url.includes('/node_modules/ws/')) return 'ws framing (ws package)';
  if (url.includes('/node_modules/bittorrent-tracker/')) return 'bittorrent-tracker';
  if (url.includes('/node_modules/')) return `dependency ${/\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? '?'}`;
  if (/\/tracker\/store-/.test(url)) return 'the store';
  if (/\/tracker\/ws-frames\.ts/.test(url)) return 'ws framing (ours)';
  if (/\/(tracker|protocol|bin)\//.test(url)) return 'our code';
  if (url.startsWith('node:internal/') || url.startsWith('node:')) return /stream|net|socket|buffer|tcp/.test(url) ? 'node net/streams' : 'node other';
  if (url === '') return 'native (writev, crypto, ...)';
  return 'other';
}

/** Printable lines: categories, then the `top` functions, as shares of the non-idle samples. */
export function summarizeProfile(text: string, top: number): string[] {
  const lines: string[] = [];
  const parsed = parseJson(text);
  const profile = profileCodec.parse(parsed.ok ? parsed.value : undefined);
  const byId = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const byFunction = new Map<string, number>();
  const categoryOfKey = new Map<string, string>();
  const byCategory = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, index) => {
    const frame = byId.get(id)!;
    const delta = profile.timeDeltas[index] ?? 0;
    total += delta;
    const where = frame.url === '' ? '' : ` ${frame.url.replace(/^.*\/(node_modules\/|tracker\/|protocol\/|bin\/)/, '$1')}:${frame.lineNumber + 1}`;
    const key = `${frame.functionName || '(anonymous)'}${where}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + delta);
    const category = categoryOf(frame.functionName, frame.url);
    categoryOfKey.set(key, category);
    byCategory.set(category, (byCategory.get(category) ?? 0) + delta);
  });
  const busy = total - (byCategory.get('idle') ?? 0);
  const share = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  lines.push(`self time by category (share of non-idle samples; the profile covers the whole process life, warm-up included):`);
  for (const [category, us] of [...byCategory].filter(([name]) => name !== 'idle').sort((a, b) => b[1] - a[1])) lines.push(`  ${share(us)}  ${category}`);
  lines.push(`top ${top} functions by self time:`);
  for (const [name, us] of [...byFunction].filter(([name]) => !name.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${share(us)}  ${name}  [${categoryOfKey.get(name)}]`);
  return lines;
}
