// The closing line of `npm test`: what ran, per area, and where.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const [resultsPath, netns] = process.argv.slice(2);
let results;
try {
  results = JSON.parse(readFileSync(resultsPath, 'utf8'));
} catch {
  console.log(`peerfill tests: no results were written (${resultsPath}); the run failed before reporting`);
  process.exit(1);
}
const areas = new Map();
for (const file of results.testResults ?? []) {
  const path = relative(process.cwd(), file.name);
  const area = path.split('/').slice(0, 2).join('/');
  const entry = areas.get(area) ?? { passed: 0, failed: 0, skipped: 0 };
  for (const test of file.assertionResults ?? []) {
    if (test.status === 'passed') entry.passed++;
    else if (test.status === 'failed') entry.failed++;
    else entry.skipped++;
  }
  areas.set(area, entry);
}
const parts = [...areas.entries()].sort().map(([area, e]) => `${area} ${e.passed}/${e.passed + e.failed + e.skipped}`);
console.log(
  `peerfill tests: ${results.numPassedTests} passed, ${results.numFailedTests} failed, ` +
    `${results.numPendingTests + (results.numTodoTests ?? 0)} skipped of ${results.numTotalTests} in ` +
    `${results.numTotalTestSuites} suites | netns ${netns} | ${parts.join(', ')}`,
);
