/**
 * The package as consumers load it: the tsup build of the real config, imported as ESM and
 * required from CommonJS, root and `graphstream/pure`, exposing the same API; and installed
 * without its optional peer dependency, the AWS SDK.
 */
import { execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'tsup';
import { afterAll, beforeAll, expect, test } from 'vitest';
import config from '../tsup.config.js';
import { createTestBucket, s3Endpoint, TEST_CREDENTIALS, TEST_REGION } from './helpers/s3.js';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const outDir = join(root, '.vitest-tmp', `package-${process.pid}`);
const vector = join(root, '__test__/fixtures/vectors/sealed-zstd.hadbj');

beforeAll(async () => {
  const options = Array.isArray(config) ? config[0] : config;
  await build({ ...options, config: false, outDir, dts: false, sourcemap: false, silent: true });
}, 120_000);

afterAll(async () => {
  await rm(outDir, { recursive: true, force: true });
});

function runNode(args: string[]): string {
  return execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
}

const probe = (load: string) => `
  ${load}
  const bytes = require('node:fs').readFileSync(${JSON.stringify(vector)});
  const protobufLoaded = () => Object.keys(require.cache).some((path) => path.includes('@bufbuild'));
  const protobufAtImport = protobufLoaded();
  console.log(JSON.stringify({
    protobufAtImport,
    root: Object.keys(rootApi).sort(),
    pure: Object.keys(pureApi).sort(),
    kinds: [rootApi.core, pureApi.pureCore.kind],
    chains: [rootApi.decodeSegment(bytes).chainHash.toString('hex'), pureApi.decodeSegment(bytes).chainHash.toString('hex')],
    entry: rootApi.decodeJournalEntry(pureApi.encodeJournalEntry({ query: 'RETURN $a', params: { a: 'b' }, timestampMs: 7 })),
    protobufAfterDecoding: protobufLoaded(),
  }));
`;

test('CommonJS consumers can require the root and the pure entry point', () => {
  const out = JSON.parse(
    runNode([
      '-e',
      probe(`const rootApi = require(${JSON.stringify(join(outDir, 'index.cjs'))});
             const pureApi = require(${JSON.stringify(join(outDir, 'pure/index.cjs'))});`),
    ]),
  );
  expect(out.kinds).toEqual(['native', 'pure']);
  expect(out.chains[0]).toBe('f028438b9a7287a614f2a3ab6096c4221f34d2f40c32cf7785982a9d28d26fe1');
  expect(out.chains[1]).toBe(out.chains[0]);
  for (const name of ['Journal', 'Uploader', 'Follower', 'S3Storage', 'GraphstreamError', 'encodeJournalEntry', 'restore']) {
    expect(out.root).toContain(name);
    expect(out.pure).toContain(name);
  }
  expect(out.root.filter((name: string) => !out.pure.includes(name))).toEqual(['activeCore', 'core', 'nativeCore', 'nativeLoadError']);
  expect(out.entry).toMatchObject({ query: 'RETURN $a', timestampMs: 7 });
  // the protobuf runtime is loaded by the first decode, not by the import
  expect([out.protobufAtImport, out.protobufAfterDecoding]).toEqual([false, true]);
});

test('ESM consumers import the same API as CommonJS ones', () => {
  const script = `
    const { createRequire } = await import('node:module');
    const require = createRequire(import.meta.url);
    const rootApi = await import(${JSON.stringify(join(outDir, 'index.js'))});
    const pureApi = await import(${JSON.stringify(join(outDir, 'pure/index.js'))});
    ${probe('')}`;
  const esm = JSON.parse(runNode(['--input-type=module', '-e', script]));
  const cjs = JSON.parse(
    runNode([
      '-e',
      probe(`const rootApi = require(${JSON.stringify(join(outDir, 'index.cjs'))});
             const pureApi = require(${JSON.stringify(join(outDir, 'pure/index.cjs'))});`),
    ]),
  );
  expect(esm.root.filter((name: string) => name !== 'default')).toEqual(cjs.root);
  expect(esm.pure.filter((name: string) => name !== 'default')).toEqual(cjs.pure);
  expect(esm.chains).toEqual(cjs.chains);
  expect(esm.entry).toEqual(cjs.entry);
  expect([esm.protobufAtImport, esm.protobufAfterDecoding]).toEqual([false, true]);
});

test('a GraphstreamError from one build is a GraphstreamError to the others (ESM, CommonJS, graphstream/pure)', () => {
  const script = `
    const { createRequire } = await import('node:module');
    const require = createRequire(import.meta.url);
    const builds = {
      esm: await import(${JSON.stringify(join(outDir, 'index.js'))}),
      cjs: require(${JSON.stringify(join(outDir, 'index.cjs'))}),
      pureEsm: await import(${JSON.stringify(join(outDir, 'pure/index.js'))}),
      pureCjs: require(${JSON.stringify(join(outDir, 'pure/index.cjs'))}),
    };
    const checks = [];
    for (const [thrower, api] of Object.entries(builds)) {
      let thrown;
      try {
        api.decodeSegment(new Uint8Array(3));
      } catch (err) {
        thrown = err;
      }
      for (const [checker, other] of Object.entries(builds)) {
        checks.push({
          thrower,
          checker,
          distinctClass: api.GraphstreamError !== other.GraphstreamError || thrower === checker,
          instanceOf: thrown instanceof other.GraphstreamError,
          is: other.isGraphstreamError(thrown),
          isWithCode: other.isGraphstreamError(thrown, 'truncated'),
          plainError: other.isGraphstreamError(new Error('[truncated] x')) || new Error('x') instanceof other.GraphstreamError,
        });
      }
    }
    console.log(JSON.stringify(checks));`;
  const checks = JSON.parse(runNode(['--input-type=module', '-e', script])) as Record<string, unknown>[];
  expect(checks).toHaveLength(16);
  for (const check of checks) {
    expect(check).toEqual({ ...check, distinctClass: true, instanceOf: true, is: true, isWithCode: true, plainError: false });
  }
});

test("the pure core's copies in one process (ESM, CommonJS, root fallback, graphstream/pure) share one zstd runtime", () => {
  const script = `
    const { createRequire } = await import('node:module');
    const require = createRequire(import.meta.url);
    const bytes = require('node:fs').readFileSync(${JSON.stringify(vector)});
    const builds = [
      await import(${JSON.stringify(join(outDir, 'index.js'))}),
      require(${JSON.stringify(join(outDir, 'index.cjs'))}),
      await import(${JSON.stringify(join(outDir, 'pure/index.js'))}),
      require(${JSON.stringify(join(outDir, 'pure/index.cjs'))}),
    ];
    const results = [];
    for (let round = 0; round < 2; round++) {
      for (const api of builds) {
        try {
          results.push(api.decodeSegment(bytes).chainHash.toString('hex'));
        } catch (err) {
          results.push(err.message);
        }
      }
    }
    console.log(JSON.stringify({ cores: builds.map((api) => api.core ?? api.pureCore.kind), results }));`;
  const out = JSON.parse(
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', env: { ...process.env, GRAPHSTREAM_CORE: 'pure' } }),
  );
  expect(out.cores).toEqual(['pure', 'pure', 'pure', 'pure']);
  expect(out.results).toEqual(Array(8).fill('f028438b9a7287a614f2a3ab6096c4221f34d2f40c32cf7785982a9d28d26fe1'));
});

test('graphstream/pure loads no native addon: its journal, uploader and cache run on the pure core', () => {
  const script = `
    const { mkdtempSync, rmSync } = require('node:fs');
    const { tmpdir } = require('node:os');
    const { join } = require('node:path');
    const pure = require(${JSON.stringify(join(outDir, 'pure/index.cjs'))});
    (async () => {
      const dir = mkdtempSync(join(tmpdir(), 'graphstream-pure-'));
      try {
        const journal = await pure.Journal.open(dir);
        await journal.appendBatch([{ query: 'RETURN 1' }, { query: 'RETURN 2' }]);
        await journal.close();
        const storage = new pure.MemoryStorage();
        const uploader = new pure.Uploader({ directory: dir, storage, db: 'db' });
        await uploader.sync();
        await uploader.stop();
        const cache = await pure.SegmentCache.open(dir, { storage: storage.identity ?? storage.description, prefix: '', db: 'db', generation: 0 });
        console.log(JSON.stringify({
          uploaded: (await storage.list('')).length,
          cached: (await cache.stats()).uploadedSegments,
          addons: Object.keys(require.cache).filter((path) => path.endsWith('.node')),
        }));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    })();`;
  expect(JSON.parse(runNode(['-e', script]))).toEqual({ uploaded: 1, cached: 1, addons: [] });
});

/**
 * The package installed in a consumer's project outside this repository (so nothing resolves
 * from its node_modules): the build, the host's platform package, and the package's dependencies,
 * but not its optional peers. Returns the package's directory.
 */
async function installedWithoutPeers(): Promise<{ project: string; installed: string }> {
  const project = await mkdtemp(join(tmpdir(), 'graphstream-lean-'));
  const modules = join(project, 'node_modules');
  const installed = join(modules, 'graphstream');
  await cp(outDir, join(installed, 'dist'), { recursive: true });
  await cp(join(root, 'package.json'), join(installed, 'package.json'));
  const binary = (await readdir(join(root, 'native'))).find((name) => /^graphstream\..+\.node$/.test(name))!;
  const platformPackage = join(modules, '@graphstream', `native-${binary.split('.')[1]}`);
  await mkdir(platformPackage, { recursive: true });
  await writeFile(join(platformPackage, 'package.json'), JSON.stringify({ name: `@graphstream/native-${binary.split('.')[1]}`, main: binary }));
  await symlink(join(root, 'native', binary), join(platformPackage, binary));
  const { dependencies, peerDependencies } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
  expect(Object.keys(peerDependencies!)).toEqual(['@aws-sdk/client-s3', 'kuzu']);
  for (const name of Object.keys(dependencies!)) {
    await mkdir(dirname(join(modules, name)), { recursive: true });
    await symlink(join(root, 'node_modules', name), join(modules, name));
  }
  return { project, installed };
}

test('without the optional @aws-sdk/client-s3, S3Storage says to install it, and openStorage serves s3:// with the native client', async () => {
  const { project, installed } = await installedWithoutPeers();
  try {
    const bucket = await createTestBucket('lean');
    const options = { endpoint: s3Endpoint(), region: TEST_REGION, credentials: TEST_CREDENTIALS, forcePathStyle: true };
    const script = (load: string) => `
      ${load}
      const options = ${JSON.stringify(options)};
      const failure = (err) => ({ name: err.name, code: err.code, message: err.message });
      const sdkStorage = new api.S3Storage({ bucket: ${JSON.stringify(bucket)}, ...options });
      const viaSdk = await sdkStorage.put('lean/a', Buffer.from('x')).then(() => 'stored', failure);
      const explicit = await api.openStorage('s3://${bucket}/lean', { ...options, backend: 'sdk' });
      const viaExplicit = await explicit.get('0001').then(() => 'read', failure);
      const opened = await api.openStorage('s3://${bucket}/lean', options);
      await opened.put('0001', Buffer.from('lean install'));
      console.log(JSON.stringify({
        viaSdk,
        viaExplicit,
        native: opened instanceof api.ObjectStoreStorage,
        read: Buffer.from(await opened.get('0001')).toString(),
      }));`;
    const esm = JSON.parse(runNode(['--input-type=module', '-e', script(`const api = await import(${JSON.stringify(join(installed, 'dist/index.js'))});`)]));
    const cjs = JSON.parse(runNode(['-e', `(async () => { ${script(`const api = require(${JSON.stringify(join(installed, 'dist/index.cjs'))});`)} })()`]));
    for (const out of [esm, cjs]) {
      for (const failed of [out.viaSdk, out.viaExplicit]) {
        expect(failed).toMatchObject({ name: 'GraphstreamError', code: 'invalid_argument' });
        expect(failed.message).toContain('npm install @aws-sdk/client-s3');
      }
      expect(out).toMatchObject({ native: true, read: 'lean install' });
    }
  } finally {
    await rm(project, { recursive: true, force: true });
  }
});
