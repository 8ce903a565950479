// `npm run bench [-- --quick] [-- --only=format,journal]`: bundles the TypeScript suite (bench/*.ts
// over ts/, the library's own sources) with esbuild, as the tests do, and runs it. The bundle
// lives in .bench-cache/ so it never mixes with dist/ (which `npm run build` cleans), one directory
// per run so that concurrent runs do not overwrite each other's bundle. It sits in the checkout
// itself, not in node_modules: a git worktree whose node_modules is a link to another checkout's
// would otherwise load that checkout's native addon.
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const outdir = join(root, '.bench-cache', `run-${process.pid}`);

const common = { outdir, outExtension: { '.js': '.mjs' }, bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'error' };
await build({ ...common, entryPoints: { suite: join(root, 'bench/suite.ts') }, packages: 'external', sourcemap: 'inline' });
// The memory group's children measure a process's RSS: they are bundled the way tsup bundles the
// package (its dependencies and peers external, the rest inside), without the inline source map
// the suite carries for its stack traces.
const { dependencies, peerDependencies } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
await build({
  ...common,
  entryPoints: {
    'memory-writer': join(root, 'bench/children/memory-writer.ts'),
    'memory-follower': join(root, 'bench/children/memory-follower.ts'),
  },
  external: [...Object.keys({ ...dependencies, ...peerDependencies }).flatMap((name) => [name, `${name}/*`])],
});

const { main } = await import(pathToFileURL(join(outdir, 'suite.mjs')).href);
try {
  await main(root, process.argv.slice(2));
} catch (err) {
  console.error(err);
  process.exitCode = 1;
}
rmSync(outdir, { recursive: true, force: true });
// moto and child processes are stopped by their groups; nothing else should hold the loop.
process.exit();
