/**
 * Bundles TypeScript entry points into runnable ESM scripts for tests that spawn real Node
 * processes (the CLI, crash children), with the settings tsup uses for the package.
 */
import { mkdir } from 'node:fs/promises';
import { build } from 'esbuild';

/**
 * Writes `<outdir>/<name>.mjs` for each `name: entry` pair. `alias` maps package names to source
 * files (the examples import 'graphstream', which is ts/index.ts here).
 */
export async function bundleScripts(entryPoints: Record<string, string>, outdir: string, alias?: Record<string, string>): Promise<void> {
  await mkdir(outdir, { recursive: true });
  await build({
    entryPoints,
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'error',
    ...(alias === undefined ? {} : { alias }),
  });
}
