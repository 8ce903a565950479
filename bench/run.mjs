// `npm run bench [-- --quick] [-- --only=format,journal]`: bundles the TypeScript suite (bench/*.ts
// over ts/, the library's own sources) with esbuild, as the tests do, and runs it. The bundle
// lives in node_modules/.cache so it never mixes with dist/ (which `npm run build` cleans), one
// directory per run so that concurrent runs do not overwrite each other's bundle.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const outdir = join(root, 'node_modules', '.cache', `graphstream-bench-${process.pid}`);

await build({
  entryPoints: {
    suite: join(root, 'bench/suite.ts'),
    'memory-writer': join(root, 'bench/children/memory-writer.ts'),
    'memory-follower': join(root, 'bench/children/memory-follower.ts'),
  },
  outdir,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'inline',
  logLevel: 'error',
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
