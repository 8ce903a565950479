import { defineConfig } from 'tsup';

/**
 * graphstream/kuzu takes the root's classes (ParamValue, GraphstreamError, ...) from 'graphstream'
 * itself, through ts/kuzu/root.ts, so a value made with the root's constructors is one there too.
 */
const kuzuUsesRoot = {
  name: 'kuzu-uses-root',
  setup(build: { onResolve(options: { filter: RegExp }, callback: (args: { importer: string }) => { path: string; external: boolean } | undefined): void }) {
    build.onResolve({ filter: /^\.\.\/index\.js$/ }, (args) =>
      /[\\/]ts[\\/]kuzu[\\/]root\.ts$/.test(args.importer) ? { path: 'graphstream', external: true } : undefined,
    );
  },
};

export default defineConfig({
  entry: { index: 'ts/index.ts', 'pure/index': 'ts/pure/index.ts', 'kuzu/index': 'ts/kuzu/index.ts', 'cli/main': 'ts/cli/main.ts' },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'ts/index.ts', 'pure/index': 'ts/pure/index.ts', 'kuzu/index': 'ts/kuzu/index.ts' } },
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: true,
  shims: true,
  splitting: false,
  esbuildPlugins: [kuzuUsesRoot],
});
