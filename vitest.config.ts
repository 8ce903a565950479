import { defineConfig } from 'vitest/config';

/** one report per Node line: .ci/run runs the suites on each (scripts/ensure-node.mjs) */
const nodeMajor = process.versions.node.split('.')[0];

export default defineConfig({
  test: {
    include: ['__test__/**/*.test.ts'],
    globalSetup: ['__test__/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default', ['json', { outputFile: `.vitest-tmp/results-node${nodeMajor}.json` }]],
  },
});
