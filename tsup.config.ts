import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'ts/index.ts', 'pure/index': 'ts/pure/index.ts', 'cli/main': 'ts/cli/main.ts' },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'ts/index.ts', 'pure/index': 'ts/pure/index.ts' } },
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: true,
  shims: true,
  splitting: false,
});
