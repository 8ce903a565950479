// The storage tests run against two real S3-compatible servers on loopback (scripts/s3-servers.ts):
// moto's server mode (pip) and versitygw (go install, into the repo's gitignored .tools/bin).
// Installs whichever is missing, at its pinned version.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MOTO = 'moto[server]==5.2.1';
const VERSITYGW_PACKAGE = 'github.com/versity/versitygw/cmd/versitygw';
const VERSITYGW_VERSION = 'v1.8.0';
const python = process.env.PYTHON ?? 'python3';
const toolsBin = join(dirname(fileURLToPath(import.meta.url)), '..', '.tools', 'bin');

function fail(message) {
  console.error(message);
  process.exitCode = 1;
}

const probe = spawnSync(python, ['-c', 'import moto.server, flask, flask_cors'], { stdio: 'ignore' });
if (probe.status !== 0) {
  console.log(`installing ${MOTO} for the S3-compatible test servers...`);
  const install = spawnSync(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', MOTO], {
    stdio: 'inherit',
  });
  if (install.status !== 0) fail(`could not install ${MOTO} with ${python} -m pip; install it by hand and rerun`);
}

// `go version -m` reads the module version built into the binary: a stale or foreign build is replaced.
if (process.env.VERSITYGW === undefined) {
  const binary = join(toolsBin, 'versitygw');
  const built = spawnSync('go', ['version', '-m', binary], { encoding: 'utf8' });
  const pinned = new RegExp(`\\bmod\\s+github\\.com/versity/versitygw\\s+${VERSITYGW_VERSION.replaceAll('.', '\\.')}\\s`);
  if (built.status !== 0 || !pinned.test(built.stdout)) {
    console.log(`installing versitygw ${VERSITYGW_VERSION} into ${toolsBin} for the S3-compatible test servers (go install, about a minute)...`);
    const install = spawnSync('go', ['install', `${VERSITYGW_PACKAGE}@${VERSITYGW_VERSION}`], {
      stdio: 'inherit',
      env: { ...process.env, GOBIN: toolsBin },
    });
    if (install.status !== 0) fail(`could not install versitygw: GOBIN=${toolsBin} go install ${VERSITYGW_PACKAGE}@${VERSITYGW_VERSION} failed`);
  }
}
