// Prints the vitest run's totals as one closing line ("N passed, N failed"), read from the
// JSON report that vitest.config.ts writes next to the default reporter's output.
import { readFileSync } from 'node:fs';

const report = JSON.parse(readFileSync(new URL('../.vitest-tmp/results.json', import.meta.url), 'utf8'));
console.log(`vitest: ${report.numPassedTests} passed, ${report.numFailedTests} failed`);
