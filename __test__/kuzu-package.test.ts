/**
 * graphstream/kuzu as a consumer loads it: the tsup build of the real config, installed into a
 * project's node_modules beside kuzu. ESM and CommonJS consumers open a leader through the
 * subpath with ParamValues made by the package root (the subpath takes the root's classes instead
 * of carrying copies, so they are its own), and neither importing the root nor the subpath loads
 * kuzu: only the application's own `kuzu` import does.
 */
import { execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'tsup';
import { afterAll, beforeAll, expect, test } from 'vitest';
import config from '../tsup.config.js';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const outDir = join(root, '.vitest-tmp', `kuzu-package-${process.pid}`);
let project: string;

beforeAll(async () => {
  const options = Array.isArray(config) ? config[0] : config;
  await build({ ...options, config: false, outDir, dts: false, sourcemap: false, silent: true });
  project = await mkdtemp(join(tmpdir(), 'gs-kuzu-consumer-'));
  const modules = join(project, 'node_modules');
  const installed = join(modules, 'graphstream');
  await cp(outDir, join(installed, 'dist'), { recursive: true });
  await cp(join(root, 'package.json'), join(installed, 'package.json'));
  const { dependencies } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
  for (const name of [...Object.keys(dependencies!), 'kuzu']) {
    await mkdir(dirname(join(modules, name)), { recursive: true });
    await symlink(join(root, 'node_modules', name), join(modules, name));
  }
}, 180_000);

afterAll(async () => {
  await rm(outDir, { recursive: true, force: true });
  if (project) await rm(project, { recursive: true, force: true });
});

/** Runs a script in the consumer project on the pure core (the test installs no platform package). */
function runConsumer(file: string): Record<string, unknown> {
  const stdout = execFileSync(process.execPath, [file], { cwd: project, encoding: 'utf8', env: { ...process.env, GRAPHSTREAM_CORE: 'pure' } });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

const body = `
  const kuzuLoaded = () => Object.keys(require.cache).some((path) => path.includes('/node_modules/kuzu/'));
  const before = kuzuLoaded();
  const dir = require('node:fs').mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'gs-kuzu-consumer-run-'));
  const kuzu = require('kuzu');
  const db = new kuzu.Database(dir + '/db', 64 * 1024 * 1024, true, false, 2 ** 32);
  const journal = await api.Journal.open(dir + '/journal');
  const leader = await kuzuApi.openKuzuLeader({ connection: new kuzu.Connection(db), journal });
  await leader.mutate('CREATE NODE TABLE P(id INT64 PRIMARY KEY, born DATE, seen TIMESTAMP)');
  await leader.mutate('CREATE (:P {id: $id, born: $born, seen: $seen})', { id: 1n, born: api.ParamValue.date('1990-04-01'), seen: new Date(Date.UTC(2026, 0, 1, 12)) });
  const rows = await leader.query('MATCH (p:P) RETURN CAST(p.born AS STRING) AS born, CAST(p.seen AS STRING) AS seen');
  await journal.close();
  console.log(JSON.stringify({ before, rows, sequence: leader.position.sequence, sameClass: kuzuApi.toParamInput(api.ParamValue.date('2020-01-01')) instanceof api.TypedParam }));
`;

test('ESM: graphstream/kuzu with the root ParamValue, kuzu loaded only by the application', async () => {
  const file = join(project, 'esm.mjs');
  await writeFile(
    file,
    `import { createRequire } from 'node:module';
     const require = createRequire(import.meta.url);
     const api = await import('graphstream');
     const kuzuApi = await import('graphstream/kuzu');
     ${body}`,
  );
  expect(runConsumer(file)).toEqual({
    before: false,
    rows: [{ born: '1990-04-01', seen: '2026-01-01 12:00:00' }],
    sequence: 2,
    sameClass: true,
  });
});

test('CommonJS: the same through require', async () => {
  const file = join(project, 'cjs.cjs');
  await writeFile(
    file,
    `(async () => {
       const api = require('graphstream');
       const kuzuApi = require('graphstream/kuzu');
       ${body}
     })().catch((err) => { console.error(err); process.exitCode = 1; });`,
  );
  expect(runConsumer(file)).toEqual({
    before: false,
    rows: [{ born: '1990-04-01', seen: '2026-01-01 12:00:00' }],
    sequence: 2,
    sameClass: true,
  });
});
