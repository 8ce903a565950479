#!/usr/bin/env node
/**
 * `npm run release:rehearse`: the release as a consumer meets it, for this machine's platform.
 *
 * 1. Builds the host target (cargo reuses an up-to-date release build), lays out the npm
 *    packages the way the publish job does (napi create-npm-dirs, artifacts, pre-publish without
 *    publishing, in a staged copy of the package) and `npm pack`s the root package and the
 *    host's platform package.
 * 2. Installs both tarballs into a fresh project with no Rust toolchain on PATH: imports the
 *    package from ESM and CommonJS, typechecks a strict TypeScript consumer (moduleResolution
 *    node16 and bundler), checks that the native core runs, and runs `graphstream demo`.
 * 3. Installs the root tarball alone into a second project: the pure fallback works and warns.
 * 4. Prints the tarballs' sizes.
 *
 * Dependencies come from the registry (or npm's cache). Fails with a non-zero exit on any miss.
 * With `--prebuilt`, step 1 takes the binary already in native/ (CI's test jobs download the
 * build job's artifact there) instead of building it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTriple } from '@napi-rs/cli';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const started = performance.now();
const work = mkdtempSync(join(tmpdir(), 'graphstream-rehearsal-'));
const windows = process.platform === 'win32';
const prebuilt = process.argv.includes('--prebuilt');
const napiCli = join(root, 'node_modules/@napi-rs/cli/dist/cli.js');
const tsc = join(root, 'node_modules/typescript/bin/tsc');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const vector = join(root, '__test__/fixtures/vectors/sealed-zstd.hadbj');
const VECTOR_CHAIN = 'f028438b9a7287a614f2a3ab6096c4221f34d2f40c32cf7785982a9d28d26fe1';

function seconds(since) {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}

function check(condition, what) {
  if (!condition) throw new Error(`release rehearsal: ${what}`);
}

/** Runs a command to its end: its stdout and stderr, or an error with both when it fails. */
function run(command, args, { cwd = root, env = process.env } = {}) {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', shell: windows && command !== process.execPath, maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) {
    throw new Error(`release rehearsal: \`${[command, ...args].join(' ')}\` in ${cwd} failed (${result.error?.message ?? `exit ${result.status}`})\n${result.stdout ?? ''}${result.stderr ?? ''}`);
  }
  return result;
}

/** Like `run`, asynchronously, for the two installs that go on side by side; resolves to stdout and stderr. */
function runAsync(command, args, { cwd, env }) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, shell: windows && command !== process.execPath, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`release rehearsal: \`${[command, ...args].join(' ')}\` in ${cwd} exited ${code}\n${stdout}${stderr}`)),
    );
  });
}

async function timed(name, fn) {
  const since = performance.now();
  await fn();
  console.log(`== ${name} (${seconds(since)})`);
}

function step(name, fn) {
  const since = performance.now();
  const result = fn();
  console.log(`== ${name} (${seconds(since)})`);
  return result;
}

/** The environment of a consumer's machine: no cargo, rustc or rustup on PATH. */
function withoutRust() {
  const pathKey = Object.keys(process.env).find((key) => key.toUpperCase() === 'PATH') ?? 'PATH';
  const exe = windows ? '.exe' : '';
  const hasRust = (dir) => ['cargo', 'rustc', 'rustup'].some((tool) => existsSync(join(dir, tool + exe)));
  const env = { ...process.env, [pathKey]: (process.env[pathKey] ?? '').split(delimiter).filter((dir) => dir !== '' && !hasRust(dir)).join(delimiter) };
  for (const key of ['CARGO', 'CARGO_HOME', 'RUSTUP_HOME', 'RUSTUP_TOOLCHAIN', 'npm_config_prefix']) delete env[key];
  return env;
}

/** The newest modification time under `paths` (files or directories), in ms. */
function newestMtime(paths) {
  let newest = 0;
  for (const path of paths) {
    const stats = statSync(path);
    if (stats.isDirectory()) newest = Math.max(newest, newestMtime(readdirSync(path).map((name) => join(path, name))));
    else newest = Math.max(newest, stats.mtimeMs);
  }
  return newest;
}

/** `npm pack` in `dir`, into the work directory: the tarball's path and npm's figures. */
function pack(dir) {
  const [info] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], { cwd: dir }).stdout);
  return { ...info, path: join(work, info.filename) };
}

function writeProject(dir, files) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `rehearsal-${dir.split(/[\\/]/).pop()}`, private: true, type: 'module' }, null, 2));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
}

/** Node scripts a consumer might write: what the package root runs, and whether it reads a sealed segment. */
const probeBody = (api) => `
  const bytes = readFileSync(${JSON.stringify(vector)});
  let error;
  try { api.decodeSegment(new Uint8Array(3)); } catch (err) { error = err; }
  console.log(JSON.stringify({
    core: api.core,
    chain: api.decodeSegment(bytes).chainHash.toString('hex'),
    pureChain: pure.decodeSegment(bytes).chainHash.toString('hex'),
    errorShared: pure.isGraphstreamError(error, 'truncated') && error instanceof pure.GraphstreamError,
  }));`.replace(/\bapi\b/g, api);
const esmProbe = `import { readFileSync } from 'node:fs';\nimport * as graphstream from 'graphstream';\nimport * as pure from 'graphstream/pure';\n${probeBody('graphstream')}\n`;
const cjsProbe = `const { readFileSync } = require('node:fs');\nconst graphstream = require('graphstream');\nconst pure = require('graphstream/pure');\n${probeBody('graphstream')}\n`;

/** A strict TypeScript consumer, as an ES module and as CommonJS, for each moduleResolution. */
const consumerTs = `import { Journal, LocalStorage, Uploader, core, isGraphstreamError, type ErrorCode, type JournalAppendEntry } from 'graphstream';
import { pureCore } from 'graphstream/pure';

export const kind: 'native' | 'pure' = core;
export const pureKind: 'native' | 'pure' = pureCore.kind;

export async function appendOne(dir: string, entry: JournalAppendEntry): Promise<number> {
  const journal = await Journal.open(dir, { durability: 'fsync' });
  try {
    const { sequence } = await journal.append(entry);
    const uploader = new Uploader({ journal, storage: new LocalStorage(dir + '-store'), prefix: 'wal/', db: 'db' });
    await uploader.sync();
    return sequence;
  } catch (err) {
    const code: ErrorCode | undefined = isGraphstreamError(err) ? err.code : undefined;
    throw new Error(String(code), { cause: err });
  } finally {
    await journal.close();
  }
}
`;
const consumerCts = `import graphstream = require('graphstream');\nexport const kind: 'native' | 'pure' = graphstream.core;\nexport const isError: boolean = graphstream.isGraphstreamError(new Error('x'));\n`;
const tsconfig = (module, moduleResolution, include) =>
  JSON.stringify({
    compilerOptions: { module, moduleResolution, target: 'ES2022', lib: ['ES2023'], types: ['node'], strict: true, noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true, skipLibCheck: false, noEmit: true },
    include,
  });

async function main() {
  // 1. build, lay out and pack
  // before the native build, which rewrites ts/core/native-binding.d.ts
  const sources = ['ts', 'tsup.config.ts', 'package.json'].map((path) => join(root, path));
  const distIsStale = !existsSync(join(root, 'dist/index.js')) || newestMtime([join(root, 'dist')]) < newestMtime(sources);
  if (!prebuilt) step('build the host target (npm run build:native; cargo reuses an up-to-date build)', () => run('npm', ['run', 'build:native', '--silent']));
  const binaries = existsSync(join(root, 'native')) ? readdirSync(join(root, 'native')).filter((name) => /^graphstream\..+\.node$/.test(name)) : [];
  check(binaries.length > 0, prebuilt ? '--prebuilt, but native/ holds no graphstream.<platform>.node' : 'npm run build:native left no native/graphstream.<platform>.node');
  check(binaries.length === 1, `native/ holds binaries for several platforms (${binaries.join(', ')}): remove the stale ones`);
  const binary = binaries[0];
  const platform = binary.slice('graphstream.'.length, -'.node'.length);
  const target = manifest.napi.targets.find((triple) => parseTriple(triple).platformArchABI === platform);
  check(target !== undefined, `this platform (${platform}) is none of package.json's napi.targets`);
  if (!prebuilt) {
    try {
      run('git', ['diff', '--exit-code', '--stat', '--', 'ts/core/native-binding.d.ts']);
    } catch {
      throw new Error('release rehearsal: the build changed ts/core/native-binding.d.ts: commit the regenerated binding types');
    }
  }
  if (distIsStale) {
    step('build the TypeScript (dist/ was older than ts/)', () => run('npm', ['run', 'build:ts', '--silent']));
  }

  // the package as the publish job lays it out: a staged copy, so the checkout is left alone
  const stage = join(work, 'stage');
  step('lay out the npm packages (napi create-npm-dirs, artifacts, pre-publish --skip-optional-publish)', () => {
    for (const path of new Set([...manifest.files, 'package.json', 'README.md', 'LICENSE'])) {
      if (existsSync(join(root, path))) cpSync(join(root, path), join(stage, path), { recursive: true });
    }
    // only the host's binary exists here; the publish job has all seven
    const hostConfig = join(work, 'napi-host.json');
    writeFileSync(hostConfig, JSON.stringify({ ...manifest.napi, targets: [target] }));
    mkdirSync(join(stage, 'artifacts'));
    cpSync(join(root, 'native', binary), join(stage, 'artifacts', binary));
    const napi = (...args) => run(process.execPath, [napiCli, ...args, '--cwd', stage, '--config-path', hostConfig], { cwd: stage });
    napi('create-npm-dirs');
    napi('artifacts', '--output-dir', 'artifacts');
    napi('pre-publish', '--tag-style', 'npm', '--no-gh-release', '--skip-optional-publish');
  });
  const rootManifest = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8'));
  check(rootManifest.optionalDependencies?.[`${manifest.napi.packageName}-${platform}`] === manifest.version, `pre-publish did not make ${manifest.napi.packageName}-${platform}@${manifest.version} an optional dependency`);
  for (const script of ['preinstall', 'install', 'postinstall', 'prepare']) check(rootManifest.scripts?.[script] === undefined, `the root package has a \`${script}\` script, which would run on consumers' installs`);
  const [rootTarball, platformTarball] = step('npm pack the root and the platform package', () => [pack(stage), pack(join(stage, 'npm', platform))]);
  check(!rootTarball.files.some((file) => file.path.endsWith('.node')), `the root tarball ships a binary: ${rootTarball.files.filter((file) => file.path.endsWith('.node')).map((file) => file.path)}`);
  check(platformTarball.files.some((file) => file.path === binary), `the platform tarball lacks ${binary}`);

  // 2. and 3. the two consumer projects, installed side by side
  const env = withoutRust();
  const nativeProject = join(work, 'with-platform-package');
  const pureProject = join(work, 'root-only');
  const typesNode = `@types/node@${JSON.parse(readFileSync(join(root, 'node_modules/@types/node/package.json'), 'utf8')).version}`;
  writeProject(nativeProject, {
    'probe.mjs': esmProbe,
    'probe.cjs': cjsProbe,
    'src/consumer.ts': consumerTs,
    'src/consumer-cjs.cts': consumerCts,
    'tsconfig.node16.json': tsconfig('node16', 'node16', ['src']),
    'tsconfig.bundler.json': tsconfig('preserve', 'bundler', ['src/consumer.ts']),
  });
  writeProject(pureProject, { 'probe.mjs': esmProbe, 'probe.cjs': cjsProbe });
  const install = (dir, specs) => runAsync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...specs], { cwd: dir, env });
  const installing = performance.now();
  // the root-only project omits optional dependencies, as a consumer's install that warns does
  // (and so that a version already on the registry is not fetched into it)
  await Promise.all([install(nativeProject, [rootTarball.path, platformTarball.path, typesNode]), install(pureProject, ['--omit=optional', rootTarball.path])]);
  console.log(`== npm install the tarballs into two fresh projects, side by side, no Rust on PATH (${seconds(installing)})`);

  // the checks run side by side (two of them are TypeScript compilations)
  const node = (project, args) => runAsync(process.execPath, args, { cwd: project, env });
  const checks = [
    timed('with the platform package: ESM and CommonJS run the native core', async () => {
      for (const probe of ['probe.mjs', 'probe.cjs']) {
        const out = JSON.parse((await node(nativeProject, [probe])).stdout);
        check(out.core === 'native', `${probe} runs the ${out.core} core with the platform package installed`);
        check(out.chain === VECTOR_CHAIN && out.pureChain === VECTOR_CHAIN, `${probe} decoded the sealed vector to chain ${out.chain} / ${out.pureChain}`);
        check(out.errorShared, `${probe}: a GraphstreamError from the root is not one to graphstream/pure`);
      }
    }),
    timed('with the platform package: graphstream demo', async () => {
      const bin = join(nativeProject, 'node_modules', '.bin', windows ? 'graphstream.cmd' : 'graphstream');
      const { stdout } = await runAsync(bin, ['demo'], { cwd: nativeProject, env });
      check(/mutations, native core/.test(stdout) && /OK: leader and follower match/.test(stdout), `graphstream demo did not run and match on the native core:\n${stdout}`);
    }),
    ...['node16', 'bundler'].map((resolution) =>
      timed(`a strict TypeScript consumer typechecks (moduleResolution ${resolution})`, () => node(nativeProject, [tsc, '-p', `tsconfig.${resolution}.json`])),
    ),
    timed('root package only: the pure core runs and warns once (GRAPHSTREAM_PURE_FALLBACK)', async () => {
      check(!existsSync(join(pureProject, 'node_modules', '@graphstream')), 'npm installed a platform package from the registry into the root-only project');
      for (const probe of ['probe.mjs', 'probe.cjs']) {
        const { stdout, stderr } = await node(pureProject, [probe]);
        const out = JSON.parse(stdout);
        check(out.core === 'pure', `${probe} runs the ${out.core} core without the platform package`);
        check(out.chain === VECTOR_CHAIN && out.pureChain === VECTOR_CHAIN, `${probe} decoded the sealed vector to chain ${out.chain} / ${out.pureChain}`);
        const warnings = stderr.match(/\[GRAPHSTREAM_PURE_FALLBACK\]/g) ?? [];
        check(warnings.length === 1 && stderr.includes(`${manifest.napi.packageName}-${platform}`), `${probe} should warn once, naming the platform package; its stderr:\n${stderr}`);
      }
    }),
  ];
  const failures = (await Promise.allSettled(checks)).filter((result) => result.status === 'rejected');
  if (failures.length > 0) throw new Error(failures.map((failure) => failure.reason?.message ?? String(failure.reason)).join('\n\n'));

  // 4. sizes
  const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(2)} MB`;
  for (const tarball of [rootTarball, platformTarball]) {
    console.log(`${tarball.filename}: ${mb(tarball.size)} packed, ${mb(tarball.unpackedSize)} unpacked, ${tarball.entryCount} files`);
  }
  console.log(`release rehearsal passed for ${platform} in ${seconds(started)}`);
  rmSync(work, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  console.error(`(the rehearsal's files are kept in ${work})`);
  process.exitCode = 1;
});
