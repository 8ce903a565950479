/**
 * The published `graphstream` 0.3 crate (the Rust crate this package replaces) as a same-run
 * reference: bench/crate-ref/ is a Rust workspace of its own (outside the root workspace, so
 * neither the addon's build nor `cargo test --workspace` builds it), built here on first use with
 * `cargo build --release` into bench/crate-ref/target/ (cached there), and run as a child process
 * that prints JSON. Its build needs `protoc`: the `protoc-path` member prints the one the
 * `protoc-bin-vendored` crate ships, passed as PROTOC to the build of the `crate-ref` runner.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ParamValue, type JournalAppendEntry } from '../../ts/index.js';
import type { Context } from './context.js';
import { graphdEntries } from './workload.js';

export interface CrateRef {
  /** the runner binary, or null when it could not be built */
  binary: string | null;
  /** why it could not be built */
  failure: string | null;
}

let built: CrateRef | null = null;

function cargo(cwd: string, args: string[], env: NodeJS.ProcessEnv = process.env): { ok: boolean; output: string } {
  const result = spawnSync('cargo', args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.error) return { ok: false, output: `cargo could not run: ${result.error.message}` };
  return { ok: result.status === 0, output };
}

/** Builds bench/crate-ref once per run (a no-op when its target dir is up to date). */
export function crateRef(context: Context, root: string): CrateRef {
  if (built) return built;
  const dir = join(root, 'bench', 'crate-ref');
  context.log('crate-ref: cargo build --release in bench/crate-ref (the graphstream 0.3 crate; minutes the first time)');
  const protoc = cargo(dir, ['build', '--release', '--locked', '-p', 'protoc-path']);
  if (!protoc.ok) return (built = { binary: null, failure: `building protoc-path failed: ${protoc.output.trim().split('\n').slice(-5).join(' | ')}` });
  const located = spawnSync(join(dir, 'target', 'release', 'protoc-path'), { encoding: 'utf8' });
  const protocPath = located.stdout?.trim();
  if (located.status !== 0 || !protocPath) return (built = { binary: null, failure: `protoc-bin-vendored has no protoc here: ${located.stderr}` });
  const runner = cargo(dir, ['build', '--release', '--locked', '-p', 'crate-ref'], { ...process.env, PROTOC: protocPath });
  if (!runner.ok) return (built = { binary: null, failure: `building the graphstream 0.3 crate failed: ${runner.output.trim().split('\n').slice(-8).join(' | ')}` });
  return (built = { binary: join(dir, 'target', 'release', 'crate-ref'), failure: null });
}

/** Runs the runner with `args` and parses the JSON it prints. */
export function runCrateRef<T>(binary: string, args: string[]): T {
  const result = spawnSync(binary, args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`crate-ref ${args[0]} failed (${result.status ?? result.signal}): ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** The crate's ParamValue, as serde writes it (externally tagged). */
type CrateParam = 'Null' | { Bool: boolean } | { Int: number } | { Float: number } | { String: string } | { List: CrateParam[] };

/**
 * The bench's graphd entries in the vocabulary both writers share: the crate's ParamValue has no
 * temporal, point or map values, so dates and datetimes become strings and a point the list
 * [srid, x, y]. Returns this package's entries (params as pairs, typed ints and floats, no
 * timestamp: both writers stamp the current time) and the same entries as the crate runner's JSON
 * lines.
 */
export function sharedEntries(count: number, seed: number): { entries: JournalAppendEntry[]; jsonLines: string } {
  // a double: a plain number unless it is integral (which would encode as an int64)
  const double = (f: number): unknown => (Number.isInteger(f) ? ParamValue.float(f) : f);
  const toShared = (value: unknown): { ours: unknown; crate: CrateParam } => {
    if (value === null || value === undefined) return { ours: null, crate: 'Null' };
    if (typeof value === 'boolean') return { ours: value, crate: { Bool: value } };
    if (typeof value === 'string') return { ours: value, crate: { String: value } };
    if (typeof value === 'number') {
      // plain numbers where they encode as the crate's do (an integer as int64, any other number as a double)
      return Number.isInteger(value) ? { ours: value, crate: { Int: value } } : { ours: double(value), crate: { Float: value } };
    }
    if (Array.isArray(value)) {
      const items = value.map(toShared);
      return { ours: items.map((i) => i.ours), crate: { List: items.map((i) => i.crate) } };
    }
    const typed = value as { type: string; value: unknown };
    switch (typed.type) {
      case 'int':
        return toShared(Number(typed.value as bigint));
      case 'float': {
        const f = typed.value as number;
        return { ours: double(f), crate: { Float: f } };
      }
      case 'date':
      case 'datetime':
        return toShared(typed.value as string);
      case 'point': {
        const p = typed.value as { srid: number; x: number; y: number };
        return { ours: [p.srid, double(p.x), double(p.y)], crate: { List: [{ Int: p.srid }, { Float: p.x }, { Float: p.y }] } };
      }
      default:
        throw new Error(`no shared form for a ${typed.type} parameter`);
    }
  };
  const entries: JournalAppendEntry[] = [];
  const lines: string[] = [];
  for (const entry of graphdEntries(count, seed)) {
    const pairs = Object.entries(entry.params as Record<string, unknown>).map(([key, value]) => [key, toShared(value)] as const);
    // params as a plain object, as an application passes them (keys are identifiers: their order holds)
    entries.push({ query: entry.query, params: Object.fromEntries(pairs.map(([key, v]) => [key, v.ours])) as JournalAppendEntry['params'] });
    lines.push(JSON.stringify({ query: entry.query, params: pairs.map(([key, v]) => [key, v.crate]) }));
  }
  return { entries, jsonLines: `${lines.join('\n')}\n` };
}

export function writeSharedEntries(file: string, jsonLines: string): void {
  writeFileSync(file, jsonLines);
}
