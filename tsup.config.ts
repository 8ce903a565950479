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
  external: [/^\.\.\/native\//],
  // Bundled (tree-shaken to what decoding uses) rather than loaded as ~100 modules from
  // node_modules: importing graphstream costs 3.6 MiB less RSS. No public type refers to it.
  noExternal: ['@bufbuild/protobuf'],
});
