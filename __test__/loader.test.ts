/**
 * The package root's choice of core, as a consumer meets it: an app bundled with esbuild (outside
 * this repository, so only its own node_modules can supply the binary) run in child processes,
 * with and without the platform package, under each GRAPHSTREAM_CORE.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTriple } from '@napi-rs/cli';
import { build, type BuildOptions } from 'esbuild';
import { afterAll, beforeAll, expect, test } from 'vitest';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
let work: string;
let platform: string;
/** an app with this platform's package in its node_modules, and one without */
let withPackage: string;
let withoutPackage: string;

beforeAll(async () => {
  const binary = (await readdir(join(root, 'native'))).find((name) => /^graphstream\..+\.node$/.test(name));
  if (binary === undefined) throw new Error('no native/graphstream.<platform>.node: run `npm run build:native`');
  platform = binary.slice('graphstream.'.length, -'.node'.length);
  work = await mkdtemp(join(tmpdir(), 'graphstream-loader-'));
  withPackage = join(work, 'with-package');
  withoutPackage = join(work, 'without-package');
  for (const app of [withPackage, withoutPackage]) {
    const common: BuildOptions = { entryPoints: [join(root, '__test__/helpers/loader-probe.ts')], bundle: true, platform: 'node', target: 'node20', logLevel: 'error' };
    await build({
      ...common,
      outfile: join(app, 'app.mjs'),
      format: 'esm',
      // what an ESM bundle for Node needs for the CommonJS dependencies inside it
      banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    });
    // a CommonJS bundle of the ESM build, where import.meta.url is empty
    await build({ ...common, outfile: join(app, 'app.cjs'), format: 'cjs', logOverride: { 'empty-import-meta': 'silent' } });
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    // installed beside the app as graphstream's dependencies: the bundle requires them on first use
    for (const dependency of ['prom-client', '@bufbuild/protobuf', '@bokuweb/zstd-wasm']) {
      await mkdir(dirname(join(app, 'node_modules', dependency)), { recursive: true });
      await symlink(join(root, 'node_modules', dependency), join(app, 'node_modules', dependency));
    }
  }
  const packageDir = join(withPackage, 'node_modules/@graphstream', `native-${platform}`);
  await mkdir(packageDir, { recursive: true });
  await writeFile(join(packageDir, 'package.json'), JSON.stringify({ name: `@graphstream/native-${platform}`, version: '0.0.0', main: binary }));
  await symlink(join(root, 'native', binary), join(packageDir, binary));
}, 120_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

interface Probe {
  core?: 'native' | 'pure';
  nativeCore?: boolean;
  warnings?: { code: string | undefined; message: string }[];
  gs?: { code: string; message: string } | null;
  lazyDependencies?: Record<string, string>;
  error?: { name: string; code: string; message: string };
}

function probe(app: string, core?: string, bundle = 'app.mjs'): Probe {
  const env = { ...process.env, GRAPHSTREAM_CORE: core };
  if (core === undefined) delete env.GRAPHSTREAM_CORE;
  // stderr piped: the warning is checked through the probe's own 'warning' listener
  return JSON.parse(execFileSync(process.execPath, [join(app, bundle)], { cwd: app, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as Probe;
}

const lazyDependenciesLoad = { payload: 'ok', metrics: 'ok', pureSeal: 'ok' };

test('a bundled app loads the binary from its platform package', () => {
  expect(probe(withPackage)).toEqual({ core: 'native', nativeCore: true, warnings: [], gs: null, lazyDependencies: lazyDependenciesLoad });
});

test('so does an app bundled as CommonJS, where import.meta.url is empty; the dependencies loaded on first use load there too', () => {
  expect(probe(withPackage, undefined, 'app.cjs')).toEqual({ core: 'native', nativeCore: true, warnings: [], gs: null, lazyDependencies: lazyDependenciesLoad });
  expect(probe(withoutPackage, undefined, 'app.cjs')).toMatchObject({ core: 'pure', warnings: [{ code: 'GRAPHSTREAM_PURE_FALLBACK' }], lazyDependencies: lazyDependenciesLoad });
});

test('without the platform package the root runs the pure core and warns once, naming the package', () => {
  const out = probe(withoutPackage);
  expect(out.core).toBe('pure');
  expect(out.warnings).toHaveLength(1);
  expect(out.warnings![0]!.code).toBe('GRAPHSTREAM_PURE_FALLBACK');
  expect(out.warnings![0]!.message).toContain(`@graphstream/native-${platform}`);
  expect(out.warnings![0]!.message).toContain('GRAPHSTREAM_CORE=pure');
});

test('object storage on the pure fallback says that it needs the native core', () => {
  const { gs } = probe(withoutPackage);
  expect(gs?.code).toBe('invalid_argument');
  expect(gs?.message).toContain('gs://bucket/prefix');
  expect(gs?.message).toContain("needs graphstream's native core");
});

test('GRAPHSTREAM_CORE=pure runs the pure core without loading the addon or warning', () => {
  expect(probe(withPackage, 'pure')).toMatchObject({ core: 'pure', nativeCore: false, warnings: [] });
  expect(probe(withoutPackage, 'pure')).toMatchObject({ core: 'pure', nativeCore: false, warnings: [] });
});

test('GRAPHSTREAM_CORE=native runs the native core where it loads', () => {
  expect(probe(withPackage, 'native')).toMatchObject({ core: 'native', warnings: [] });
});

test('GRAPHSTREAM_CORE=native where no binary loads fails the import with an error naming the platform package', () => {
  const { error } = probe(withoutPackage, 'native');
  expect(error).toMatchObject({ name: 'GraphstreamError', code: 'invalid_argument' });
  expect(error!.message).toContain(`@graphstream/native-${platform}`);
  expect(error!.message).not.toContain('npm run build');
});

test('an unknown GRAPHSTREAM_CORE is refused', () => {
  expect(probe(withPackage, 'rust').error).toMatchObject({ code: 'invalid_argument', message: expect.stringContaining('GRAPHSTREAM_CORE="rust"') });
});

test("the loader requires each of package.json's napi.targets by its package name", async () => {
  const { napi } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { napi: { targets: string[]; packageName: string } };
  const loader = await readFile(join(root, 'ts/core/native.ts'), 'utf8');
  const required = [...loader.matchAll(/require\('(@graphstream\/native-[a-z0-9-]+)'\)/g)].map((match) => match[1]);
  expect(required.sort()).toEqual(napi.targets.map((target) => `${napi.packageName}-${parseTriple(target).platformArchABI}`).sort());
});
