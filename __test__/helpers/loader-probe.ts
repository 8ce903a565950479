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

/** The dependencies loaded on first use (protobuf runtime, prom-client, zstd-wasm), each exercised once. */
async function lazyDependencies(api: typeof import('../../ts/index.js')): Promise<Record<string, string>> {
  const pure = await import('../../ts/pure/index.js');
  const attempt = (run: () => void): string => {
    try {
      run();
      return 'ok';
    } catch (err) {
      return (err as Error).message;
    }
  };
  return {
    payload: attempt(() => {
      const decoded = api.decodeJournalEntry(api.encodeJournalEntry({ query: 'RETURN 1', params: { n: 1n } }));
      if (decoded.query !== 'RETURN 1') throw new Error('payload did not round-trip');
    }),
    metrics: attempt(() => void new api.GraphstreamMetrics().registry),
    pureSeal: attempt(() => {
      const payload = Buffer.from('entry');
      const unsealed = Buffer.concat([
        pure.encodeHeader({ firstSeq: 1, createdMs: 0 }),
        pure.encodeEntry({ sequence: 1, prevHash: Buffer.alloc(32), payload }),
      ]);
      if (pure.decodeSegment(pure.sealSegment(unsealed)).entries.length !== 1) throw new Error('seal did not round-trip');
    }),
  };
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
    console.log(JSON.stringify({ core: api.core, nativeCore: api.nativeCore !== null, warnings, gs, lazyDependencies: await lazyDependencies(api) }));
  } catch (err) {
    console.log(JSON.stringify({ error: failure(err) }));
  }
}

// no top-level await: the suite bundles this as CommonJS too
void main();
