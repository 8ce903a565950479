// Prints each vitest run's totals as one closing line per Node line ("node 22: N passed, N failed"),
// read from the JSON reports that vitest.config.ts writes next to the default reporter's output.
import { readdirSync, readFileSync } from 'node:fs';

const dir = new URL('../.vitest-tmp/', import.meta.url);
const reports = readdirSync(dir)
  .map((name) => /^results-node(\d+)\.json$/.exec(name))
  .filter((match) => match !== null)
  .sort((a, b) => Number(a[1]) - Number(b[1]));
for (const [name, major] of reports) {
  const report = JSON.parse(readFileSync(new URL(name, dir), 'utf8'));
  console.log(`vitest on node ${major}: ${report.numPassedTests} passed, ${report.numFailedTests} failed`);
}
if (reports.length === 0) console.log('vitest: no report in .vitest-tmp');
