// The encryption tests check the package's objects against the standard `age` tool. Installs it
// when missing (Debian's age, with apt-get, as root).
import { spawnSync } from 'node:child_process';

const run = (command, args) =>
  spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;

if (spawnSync('age', ['--version'], { stdio: 'ignore' }).status !== 0) {
  console.log('installing age for the encryption tests...');
  if (process.getuid?.() !== 0 || !run('apt-get', ['update', '-qq']) || !run('apt-get', ['install', '-y', '-qq', 'age'])) {
    console.error('could not install age with apt-get; install it by hand (Debian: age) and rerun');
    process.exitCode = 1;
  }
}
