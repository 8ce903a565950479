// The power-loss tests run the journal on a lazy FUSE file system (__test__/helpers/lazyfs.py),
// which needs libfuse 3 and the mfusepy bindings. Installs them when missing: libfuse with
// apt-get (Debian's fuse3 and libfuse3-3, as root), mfusepy with pip.
import { spawnSync } from 'node:child_process';

const MFUSEPY = 'mfusepy==3.1.1';
const python = process.env.PYTHON ?? 'python3';
const probe = () => spawnSync(python, ['-c', 'import mfusepy'], { stdio: 'ignore' }).status === 0;
const run = (command, args) =>
  spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;

const hasLibfuse = () => spawnSync('sh', ['-c', 'ldconfig -p | grep -q libfuse3.so.3'], { stdio: 'ignore' }).status === 0;
if (!hasLibfuse()) {
  console.log('installing libfuse 3 (fuse3, libfuse3-3) for the power-loss tests...');
  if (process.getuid?.() !== 0 || !run('apt-get', ['update', '-qq']) || !run('apt-get', ['install', '-y', '-qq', 'fuse3', 'libfuse3-3'])) {
    console.error('could not install libfuse 3 with apt-get; install it by hand (Debian: fuse3 libfuse3-3) and rerun');
    process.exitCode = 1;
  }
}
if (!probe()) {
  console.log(`installing ${MFUSEPY} for the power-loss tests...`);
  if (!run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', MFUSEPY])) {
    console.error(`could not install ${MFUSEPY} with ${python} -m pip; install it by hand and rerun`);
    process.exitCode = 1;
  }
}
