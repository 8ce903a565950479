// The storage tests run against a real S3-compatible server: moto's server mode on loopback
// (it honours `If-None-Match: *`, which the fencing tests need). Installs it when missing.
import { spawnSync } from 'node:child_process';

const MOTO = 'moto[server]==5.2.1';
const python = process.env.PYTHON ?? 'python3';

const probe = spawnSync(python, ['-c', 'import moto.server, flask, flask_cors'], { stdio: 'ignore' });
if (probe.status !== 0) {
  console.log(`installing ${MOTO} for the S3-compatible test server...`);
  const install = spawnSync(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', MOTO], {
    stdio: 'inherit',
  });
  if (install.status !== 0) {
    console.error(`could not install ${MOTO} with ${python} -m pip; install it by hand and rerun`);
    process.exitCode = 1;
  }
}
