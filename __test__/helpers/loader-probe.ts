/**
 * A consumer's app, bundled by the loader suite: which core the package root runs, what it
 * warned, and what object storage says without the native core; printed as one JSON line.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const warnings: { code: string | undefined; message: string }[] = [];
process.on('warning', (warning) => warnings.push({ code: (warning as NodeJS.ErrnoException).code, message: warning.message }));

function failure(err: unknown) {
  const error = err as { name?: string; code?: string; message?: string };
  return { name: error.name, code: error.code, message: error.message };
}

async function main(): Promise<void> {
  try {
    const api = await import('../../ts/index.js');
    // a facade call without a `core` option resolves the default core once more
    const dir = await mkdtemp(join(tmpdir(), 'graphstream-probe-'));
    await api.verifyJournal(dir).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    const gs = await api.openStorage('gs://bucket/prefix').then(() => null, failure);
    await new Promise((resolve) => setImmediate(resolve));
    console.log(JSON.stringify({ core: api.core, nativeCore: api.nativeCore !== null, warnings, gs }));
  } catch (err) {
    console.log(JSON.stringify({ error: failure(err) }));
  }
}

// no top-level await: the suite bundles this as CommonJS too
void main();
