// `node --import ./peak-rss.mjs ...` with PF_PEAK_RSS=FILE: when the process exits, its peak
// resident set size (getrusage ru_maxrss: every thread, workers included) is written to FILE
// in bytes. The same figure as GNU time's "Maximum resident set size", without needing time(1).
import { writeFileSync } from 'node:fs';

const path = process.env.PF_PEAK_RSS;
if (path) process.once('exit', () => writeFileSync(path, String(process.resourceUsage().maxRSS * 1024)));
