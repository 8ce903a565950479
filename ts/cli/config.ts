/**
 * The sidecar's config file (`graphstream replicate --config graphstream.yml`): YAML whose values
 * may hold `${VAR}` (`${VAR:-default}` when unset or empty; `$$` for a `$`), expanded after parsing,
 * so comments are left alone and a value cannot add YAML structure. Checked field by field: an
 * error names the file, the line and the field.
 *
 *   addr: 127.0.0.1:9464            # optional: /metrics, /healthz, /readyz, /status
 *   databases:
 *     - dir: /var/lib/graphd/users  # the journal directory graphd writes (waited for if absent)
 *       db: users                   # optional: the directory name by default
 *       lease: { holder: host-a, ttl: 15000, wait: true }   # optional
 *       replicas:
 *         - url: s3://bucket        # s3://, file://, a directory, memory://
 *           prefix: wal/            # optional
 *           endpoint: http://...    # optional, with region, path-style
 *           interval: 1000          # optional: ms between looks for sealed segments
 *           concurrency: 4          # optional: uploads in flight for this replica
 *           encryption: { age-recipients: [age1...] }   # optional: what this replica uploads is encrypted to them
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, type Node } from 'yaml';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { MIN_LEASE_TTL_MS } from '../replication/ownership.js';
import { checkDb } from '../storage/names.js';
import { addressArg, prefixArg } from './options.js';

export interface ReplicaConfig {
  url: string;
  prefix: string;
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  intervalMs: number;
  concurrency: number;
  /** checked and kept; replication does not encrypt yet */
  encryption?: { ageRecipients: string[] };
}

export interface LeaseConfig {
  holder: string;
  ttlMs: number;
  wait: boolean;
}

export interface DatabaseConfig {
  db: string;
  dir: string;
  lease?: LeaseConfig;
  replicas: ReplicaConfig[];
}

export interface SidecarConfig {
  file: string;
  addr?: { host: string | undefined; port: number };
  databases: DatabaseConfig[];
}

const DEFAULT_INTERVAL_MS = 1000;
const DEFAULT_CONCURRENCY = 4;

/** `${VAR}` and `${VAR:-default}` from `env`; `$$` is a literal `$`. An unset VAR without a default is an error. */
export function expandVariables(text: string, env: Record<string, string | undefined>, fail: (message: string, offset: number) => never): string {
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (match, name: string | undefined, fallback: string | undefined, offset: number) => {
    if (match === '$$') return '$';
    const value = env[name!];
    if (value !== undefined && value !== '') return value;
    if (fallback !== undefined) return fallback;
    return fail(`\${${name}} is not set`, offset);
  });
}

/** Reads one YAML node as plain data, keeping where it is for messages. */
class Fields {
  constructor(
    private readonly file: string,
    private readonly lines: LineCounter,
    private readonly env: Record<string, string | undefined>,
  ) {}

  fail(node: Node | null | undefined, field: string, message: string, offset?: number): never {
    const at = offset ?? node?.range?.[0];
    const line = at === undefined ? '' : `:${this.lines.linePos(at).line}`;
    throw new GraphstreamError('invalid_argument', `${this.file}${line}: ${field}: ${message}`);
  }

  map(node: Node | null | undefined, field: string, allowed: readonly string[]): Map<string, Node> {
    if (!isMap(node)) this.fail(node, field, 'expected a mapping');
    const entries = new Map<string, Node>();
    for (const pair of node.items) {
      const key = String((pair.key as { value?: unknown } | null)?.value ?? pair.key);
      if (!allowed.includes(key)) this.fail(pair.key as Node, `${field}.${key}`, `unknown field (known: ${allowed.join(', ')})`);
      entries.set(key, pair.value as Node);
    }
    return entries;
  }

  list(node: Node | null | undefined, field: string): Node[] {
    if (!isSeq(node)) this.fail(node, field, 'expected a list');
    return node.items as Node[];
  }

  /** A scalar's value, `${VAR}`s expanded in strings. */
  scalar(node: Node | null | undefined, field: string): unknown {
    const value = (node as { value?: unknown } | null | undefined)?.value;
    return typeof value === 'string' ? expandVariables(value, this.env, (message) => this.fail(node, field, message)) : value;
  }

  string(node: Node | null | undefined, field: string): string {
    const value = this.scalar(node, field);
    if (typeof value !== 'string' || value === '') this.fail(node, field, 'expected a non-empty string');
    return value;
  }

  integer(node: Node | null | undefined, field: string, min: number, max: number): number {
    const scalar = this.scalar(node, field);
    const value = typeof scalar === 'string' && /^\d+$/.test(scalar) ? Number(scalar) : scalar;
    if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) this.fail(node, field, `expected an integer in ${min}..${max}`);
    return value as number;
  }

  boolean(node: Node | null | undefined, field: string): boolean {
    const scalar = this.scalar(node, field);
    const value = scalar === 'true' ? true : scalar === 'false' ? false : scalar;
    if (typeof value !== 'boolean') this.fail(node, field, 'expected true or false');
    return value;
  }

  /** A value checked by one of the CLI's argument parsers. */
  parsed<T>(node: Node | null | undefined, field: string, parse: (value: string) => T): T {
    const text = this.string(node, field);
    try {
      return parse(text);
    } catch (err) {
      return this.fail(node, field, (err as Error).message.replace(/\.$/, ''));
    }
  }
}

function readReplica(fields: Fields, node: Node, field: string, base: string): ReplicaConfig {
  const entries = fields.map(node, field, ['url', 'prefix', 'endpoint', 'region', 'path-style', 'interval', 'concurrency', 'encryption']);
  const url = fields.string(entries.get('url'), `${field}.url`);
  const replica: ReplicaConfig = {
    url: /^[a-zA-Z][a-zA-Z0-9+.-]+:\/\//.test(url) ? url : resolve(base, url),
    prefix: entries.has('prefix') ? fields.parsed(entries.get('prefix'), `${field}.prefix`, prefixArg) : '',
    intervalMs: entries.has('interval') ? fields.integer(entries.get('interval'), `${field}.interval`, 1, 3_600_000) : DEFAULT_INTERVAL_MS,
    concurrency: entries.has('concurrency') ? fields.integer(entries.get('concurrency'), `${field}.concurrency`, 1, 256) : DEFAULT_CONCURRENCY,
  };
  if (entries.has('endpoint')) replica.endpoint = fields.string(entries.get('endpoint'), `${field}.endpoint`);
  if (entries.has('region')) replica.region = fields.string(entries.get('region'), `${field}.region`);
  if (entries.has('path-style')) replica.pathStyle = fields.boolean(entries.get('path-style'), `${field}.path-style`);
  if (entries.has('encryption')) {
    const encryption = fields.map(entries.get('encryption'), `${field}.encryption`, ['age-recipients']);
    const recipients = fields.list(encryption.get('age-recipients'), `${field}.encryption.age-recipients`);
    if (recipients.length === 0) fields.fail(encryption.get('age-recipients'), `${field}.encryption.age-recipients`, 'expected at least one recipient');
    replica.encryption = {
      ageRecipients: recipients.map((recipient, index) => {
        const text = fields.string(recipient, `${field}.encryption.age-recipients[${index}]`);
        if (!/^age1[0-9a-z]{20,}$/.test(text)) fields.fail(recipient, `${field}.encryption.age-recipients[${index}]`, 'expected an age recipient (age1...)');
        return text;
      }),
    };
  }
  return replica;
}

function readDatabase(fields: Fields, node: Node, field: string, base: string): DatabaseConfig {
  const entries = fields.map(node, field, ['dir', 'db', 'lease', 'replicas']);
  const dir = resolve(base, fields.string(entries.get('dir'), `${field}.dir`));
  const db = entries.has('db') ? fields.string(entries.get('db'), `${field}.db`) : basename(dir);
  try {
    checkDb(db, 'db');
  } catch (err) {
    fields.fail(entries.get('db') ?? entries.get('dir'), `${field}.db`, (err as Error).message);
  }
  const replicas = fields.list(entries.get('replicas'), `${field}.replicas`);
  if (replicas.length === 0) fields.fail(entries.get('replicas'), `${field}.replicas`, 'expected at least one replica');
  const database: DatabaseConfig = { db, dir, replicas: replicas.map((replica, index) => readReplica(fields, replica, `${field}.replicas[${index}]`, base)) };
  if (entries.has('lease')) {
    const lease = fields.map(entries.get('lease'), `${field}.lease`, ['holder', 'ttl', 'wait']);
    database.lease = {
      holder: fields.string(lease.get('holder'), `${field}.lease.holder`),
      ttlMs: lease.has('ttl') ? fields.integer(lease.get('ttl'), `${field}.lease.ttl`, MIN_LEASE_TTL_MS, 3_600_000) : 15_000,
      wait: lease.has('wait') ? fields.boolean(lease.get('wait'), `${field}.lease.wait`) : true,
    };
  }
  return database;
}

/** Parses and checks a config file's text; relative paths are relative to the file's directory. */
export function parseConfig(text: string, file: string, env: Record<string, string | undefined> = process.env): SidecarConfig {
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const yamlFields = new Fields(file, lines, env);
  const [error] = document.errors;
  if (error !== undefined) yamlFields.fail(null, 'yaml', error.message.split('\n')[0]!, error.pos[0]);
  const top = yamlFields.map(document.contents as Node, 'config', ['addr', 'databases']);
  const databases = yamlFields.list(top.get('databases'), 'databases');
  const base = dirname(file);
  const config: SidecarConfig = {
    file,
    databases: databases.map((database, index) => readDatabase(yamlFields, database, `databases[${index}]`, base)),
  };
  const seen = new Set<string>();
  for (const [index, database] of config.databases.entries()) {
    if (seen.has(database.db)) yamlFields.fail(databases[index], `databases[${index}].db`, `db ${database.db} is listed twice`);
    seen.add(database.db);
  }
  if (top.has('addr')) config.addr = yamlFields.parsed(top.get('addr'), 'addr', addressArg);
  return config;
}

export async function loadConfig(path: string, env: Record<string, string | undefined> = process.env): Promise<SidecarConfig> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw toGraphstreamError(err, `config file ${file}`);
  }
  return parseConfig(text, file, env);
}
