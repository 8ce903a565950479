/**
 * The module graph of ts/, as dpdm reads it (imports resolved by TypeScript under tsconfig.json,
 * type-only and dynamic imports included): no cycles, and the seams hold. The facade reaches the
 * pure twin only through the Core (`pureCore`, taken by the default core and the package root),
 * and the addon only through ts/core/native.ts.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCircular, parseDependencyTree, type DependencyTree } from 'dpdm';
import { beforeAll, expect, test } from 'vitest';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

let tree: DependencyTree;
beforeAll(async () => {
  // '.d.ts': the addon's types (ts/core/native-binding.d.ts) have no .ts or .js file beside them
  tree = await parseDependencyTree('ts/**/*.ts', {
    cwd: root,
    context: root,
    tsconfig: join(root, 'tsconfig.json'),
    extensions: ['', '.ts', '.d.ts', '.js'],
  });
});

/** Which modules each module in ts/ imports, as [importing module, imported module], both relative to the root. */
function imports(): [from: string, to: string][] {
  return Object.entries(tree).flatMap(([from, dependencies]) =>
    [...new Set((dependencies ?? []).flatMap((dependency) => dependency.id ?? []))].map((to): [string, string] => [from, to]),
  );
}

test('every relative import in ts/ resolves to a file', () => {
  const unresolved = Object.values(tree)
    .flatMap((dependencies) => dependencies ?? [])
    .filter((dependency) => dependency.request.startsWith('.') && dependency.id === null)
    .map((dependency) => `${dependency.issuer}: ${dependency.request}`);
  expect(unresolved).toEqual([]);
  expect(imports().length).toBeGreaterThan(100);
});

test('ts/ has no import cycles', () => {
  expect(parseCircular(tree)).toEqual([]);
});

test('outside ts/pure/, only the default core and the package root import from it, and only pureCore', () => {
  const intoPure = imports().filter(([from, to]) => to.startsWith('ts/pure/') && !from.startsWith('ts/pure/'));
  expect(intoPure.sort()).toEqual([
    ['ts/core/default.ts', 'ts/pure/core.ts'],
    ['ts/index.ts', 'ts/pure/core.ts'],
  ]);
});

test('only ts/core/native.ts imports the native addon', () => {
  const intoAddon = imports().filter(([, to]) => to === 'ts/core/native-binding.d.ts' || to.startsWith('native/'));
  expect(intoAddon).toEqual([['ts/core/native.ts', 'ts/core/native-binding.d.ts']]);
});
