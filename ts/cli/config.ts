/**
 * The sidecar's config file (`graphstream replicate --config graphstream.yml`): YAML whose values
 * may hold `${VAR}` (`${VAR:-default}` when unset or empty; `$$` for a `$`), expanded after parsing,
 * so comments are left alone and a value cannot add YAML structure. Checked field by field: an
 * error names the file, the line and the field.
 *
 *   addr: 127.0.0.1:9464            # optional: /metrics, /healthz, /readyz, /status
 *   limits:                         # optional: shared by every database of the process
 *     upload-concurrency: 8         #   segment puts in flight at once, in all
 *     download-concurrency: 8       #   compaction's reads at once, in all
 *     memory-bytes: 256MiB          #   bytes of segments held for puts at once, in all
 *   databases:
 *     - dir: /var/lib/graphd/users  # the journal directory graphd writes (waited for if absent)
 *       db: users                   # optional: the directory name by default
 *       lease: { holder: host-a, ttl: 15000, wait: true }   # optional
 *       readiness: { max-lag-seconds: 60, max-pending-segments: 100 }   # optional: /readyz bounds
 *       replicas:
 *         - url: s3://bucket        # s3://, file://, a directory, memory://
 *           name: primary           # optional: the metrics' replica label (default its index)
 *           prefix: wal/            # optional
 *           endpoint: http://...    # optional, with region, path-style
 *           interval: 1000          # optional: ms between looks for sealed segments
 *           concurrency: 4          # optional: uploads in flight for this replica
 *           encryption: { age-recipients: [age1...] }   # optional: what this replica uploads is encrypted to them
 *           retention:              # optional
 *             local: 24h            #   an uploaded segment leaves the journal directory this long after its upload
 *             local-max-bytes: 1GiB #   or sooner, oldest first, while the directory holds more
 *             remote: 24h           #   compaction: an original leaves storage this long after its replacement
 *             remote-keep-last: 1   #   compaction: the newest originals kept whatever their age
 *           compaction:             # optional: merge uploaded segments in storage
 *             interval: 1h          #   between passes
 *             threshold: 16         #   uncompacted originals that make a pass compact
 *             level: 3              #   zstd level of compacted segments (0: none)
 *             max-output-bytes: 64MiB
 *
 * Durations are milliseconds or a number with a unit (500ms, 30s, 5m, 24h, 7d); sizes are bytes
 * or a number with a unit (KiB, MiB, GiB, KB, MB, GB).
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, type Node } from 'yaml';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { DEFAULT_MAX_BODY_BYTES } from '../format/constants.js';
import { MIN_LEASE_TTL_MS } from '../replication/ownership.js';
import { checkDb } from '../storage/names.js';
import { addressArg, prefixArg, sizeArg } from './options.js';

export interface ReplicaConfig {
  /** the replica label of its metrics and its name in /status: `name`, else its index in the db's list */
  name: string;
  url: string;
  prefix: string;
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  intervalMs: number;
  concurrency: number;
  /** what it uploads is encrypted to these recipients */
  encryption?: { ageRecipients: string[] };
  retention?: RetentionConfig;
  compaction?: CompactionSchedule;
}

/** What the library deletes, and when (UploaderOptions.cache; compaction's retention). */
export interface RetentionConfig {
  /** the journal directory: an uploaded segment is deleted this long after its upload (CacheConfig.retentionMs) */
  localMs?: number;
  /** ... or sooner, oldest first, while the directory's segments exceed this (CacheConfig.maxBytes) */
  localMaxBytes?: number;
  /** storage, with compaction: an original is deleted this long after its compacted replacement was confirmed */
  remoteMs?: number;
  /** storage, with compaction: the newest originals kept whatever their age */
  remoteKeepLast?: number;
}

/** Background compaction of a replica (runBackgroundCompaction), in the generation its uploader writes. */
export interface CompactionSchedule {
  intervalMs: number;
  threshold?: number;
  level?: number;
  maxOutputBytes?: number;
}

/** When /readyz counts a database's replica as ready. */
export interface ReadinessConfig {
  /** the oldest sealed segment not uploaded yet may wait this long */
  maxLagSeconds: number;
  /** sealed segments not uploaded yet, at most */
  maxPendingSegments: number;
}

/** Limits shared by every database of the process (./replication/limits.ts); unlimited when absent. */
export interface LimitsConfig {
  uploadConcurrency?: number;
  downloadConcurrency?: number;
  memoryBytes?: number;
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
  readiness: ReadinessConfig;
  replicas: ReplicaConfig[];
}

export interface SidecarConfig {
  file: string;
  addr?: { host: string | undefined; port: number };
  limits: LimitsConfig;
  databases: DatabaseConfig[];
}

const DEFAULT_INTERVAL_MS = 1000;
const DEFAULT_CONCURRENCY = 4;
export const DEFAULT_READINESS: Readonly<ReadinessConfig> = Object.freeze({ maxLagSeconds: 60, maxPendingSegments: 100 });
const DEFAULT_COMPACTION_INTERVAL_MS = 60 * 60 * 1000;
const MAX_DURATION_MS = 365 * 24 * 60 * 60 * 1000;
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

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

  /** Milliseconds: an integer, or a number with a unit (500ms, 30s, 5m, 24h, 7d). */
  duration(node: Node | null | undefined, field: string, minMs: number, maxMs = MAX_DURATION_MS): number {
    const scalar = this.scalar(node, field);
    const match = typeof scalar === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(scalar) : null;
    const ms = typeof scalar === 'number' ? scalar : match ? Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? 'ms']!) : NaN;
    if (!Number.isSafeInteger(ms) || ms < minMs || ms > maxMs) this.fail(node, field, `expected a duration in ${minMs}ms..${maxMs / 86_400_000}d (e.g. 500ms, 30s, 5m, 24h, 7d)`);
    return ms;
  }

  /** Bytes: an integer, or a number with a unit (KiB, MiB, GiB, KB, MB, GB). */
  size(node: Node | null | undefined, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const scalar = this.scalar(node, field);
    let bytes = typeof scalar === 'number' ? scalar : NaN;
    if (typeof scalar === 'string' && scalar.trim() !== '0') {
      try {
        bytes = sizeArg(scalar);
      } catch {
        bytes = NaN;
      }
    } else if (typeof scalar === 'string') {
      bytes = 0;
    }
    if (!Number.isSafeInteger(bytes) || bytes < min || bytes > max) this.fail(node, field, `expected a size in bytes in ${min}..${max} (e.g. 1048576, 256MiB, 1GiB)`);
    return bytes;
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

function readReplica(fields: Fields, node: Node, field: string, base: string, index: number): ReplicaConfig {
  const entries = fields.map(node, field, ['name', 'url', 'prefix', 'endpoint', 'region', 'path-style', 'interval', 'concurrency', 'encryption', 'retention', 'compaction']);
  const url = fields.string(entries.get('url'), `${field}.url`);
  const replica: ReplicaConfig = {
    name: entries.has('name') ? fields.string(entries.get('name'), `${field}.name`) : String(index),
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
  if (entries.has('compaction')) {
    const at = `${field}.compaction`;
    const compaction = fields.map(entries.get('compaction'), at, ['interval', 'threshold', 'level', 'max-output-bytes']);
    // the compactor reads every original it merges: an encrypted one needs identities the config does not hold
    if (replica.encryption !== undefined) fields.fail(entries.get('compaction'), at, 'cannot compact an encrypted replica (compaction reads the originals, and the config holds no identities); run compactOnce with them instead');
    replica.compaction = { intervalMs: compaction.has('interval') ? fields.duration(compaction.get('interval'), `${at}.interval`, 1) : DEFAULT_COMPACTION_INTERVAL_MS };
    if (compaction.has('threshold')) replica.compaction.threshold = fields.integer(compaction.get('threshold'), `${at}.threshold`, 2, 1_000_000);
    if (compaction.has('level')) replica.compaction.level = fields.integer(compaction.get('level'), `${at}.level`, 0, 22);
    if (compaction.has('max-output-bytes')) replica.compaction.maxOutputBytes = fields.size(compaction.get('max-output-bytes'), `${at}.max-output-bytes`, 1, DEFAULT_MAX_BODY_BYTES);
  }
  if (entries.has('retention')) {
    const at = `${field}.retention`;
    const retention = fields.map(entries.get('retention'), at, ['local', 'local-max-bytes', 'remote', 'remote-keep-last']);
    replica.retention = {};
    if (retention.has('local')) replica.retention.localMs = fields.duration(retention.get('local'), `${at}.local`, 0);
    if (retention.has('local-max-bytes')) replica.retention.localMaxBytes = fields.size(retention.get('local-max-bytes'), `${at}.local-max-bytes`, 0);
    for (const key of ['remote', 'remote-keep-last'] as const) {
      // storage keeps every sequence: the only objects the library deletes are originals a compacted segment replaced
      if (retention.has(key) && replica.compaction === undefined) {
        fields.fail(retention.get(key), `${at}.${key}`, 'needs compaction on this replica (only originals a compacted segment replaced are ever deleted from storage)');
      }
    }
    if (retention.has('remote')) replica.retention.remoteMs = fields.duration(retention.get('remote'), `${at}.remote`, 0);
    if (retention.has('remote-keep-last')) replica.retention.remoteKeepLast = fields.integer(retention.get('remote-keep-last'), `${at}.remote-keep-last`, 1, 1_000_000);
  }
  return replica;
}

function readDatabase(fields: Fields, node: Node, field: string, base: string): DatabaseConfig {
  const entries = fields.map(node, field, ['dir', 'db', 'lease', 'readiness', 'replicas']);
  const dir = resolve(base, fields.string(entries.get('dir'), `${field}.dir`));
  const db = entries.has('db') ? fields.string(entries.get('db'), `${field}.db`) : basename(dir);
  try {
    checkDb(db, 'db');
  } catch (err) {
    fields.fail(entries.get('db') ?? entries.get('dir'), `${field}.db`, (err as Error).message);
  }
  const replicas = fields.list(entries.get('replicas'), `${field}.replicas`);
  if (replicas.length === 0) fields.fail(entries.get('replicas'), `${field}.replicas`, 'expected at least one replica');
  const database: DatabaseConfig = {
    db,
    dir,
    readiness: { ...DEFAULT_READINESS },
    replicas: replicas.map((replica, index) => readReplica(fields, replica, `${field}.replicas[${index}]`, base, index)),
  };
  for (const [index, replica] of database.replicas.entries()) {
    const at = `${field}.replicas[${index}]`;
    const first = database.replicas.findIndex((other) => other.name === replica.name);
    if (first !== index) fields.fail(replicas[index], `${at}.name`, `replica name ${replica.name} is also replicas[${first}]'s`);
    // local retention is the journal directory's: each replica's cleanup deletes what every replica uploaded
    const local = (config: ReplicaConfig) => JSON.stringify([config.retention?.localMs, config.retention?.localMaxBytes]);
    if (local(replica) !== local(database.replicas[0]!)) {
      fields.fail(replicas[index], `${at}.retention`, "local and local-max-bytes are the journal directory's, shared by its replicas: give every replica of a db the same ones");
    }
  }
  if (entries.has('lease')) {
    const lease = fields.map(entries.get('lease'), `${field}.lease`, ['holder', 'ttl', 'wait']);
    database.lease = {
      holder: fields.string(lease.get('holder'), `${field}.lease.holder`),
      ttlMs: lease.has('ttl') ? fields.integer(lease.get('ttl'), `${field}.lease.ttl`, MIN_LEASE_TTL_MS, 3_600_000) : 15_000,
      wait: lease.has('wait') ? fields.boolean(lease.get('wait'), `${field}.lease.wait`) : true,
    };
  }
  if (entries.has('readiness')) {
    const readiness = fields.map(entries.get('readiness'), `${field}.readiness`, ['max-lag-seconds', 'max-pending-segments']);
    if (readiness.has('max-lag-seconds')) database.readiness.maxLagSeconds = fields.integer(readiness.get('max-lag-seconds'), `${field}.readiness.max-lag-seconds`, 1, 31_536_000);
    if (readiness.has('max-pending-segments')) {
      database.readiness.maxPendingSegments = fields.integer(readiness.get('max-pending-segments'), `${field}.readiness.max-pending-segments`, 0, 1_000_000_000);
    }
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
  const top = yamlFields.map(document.contents as Node, 'config', ['addr', 'limits', 'databases']);
  const databases = yamlFields.list(top.get('databases'), 'databases');
  const base = dirname(file);
  const config: SidecarConfig = {
    file,
    limits: {},
    databases: databases.map((database, index) => readDatabase(yamlFields, database, `databases[${index}]`, base)),
  };
  const seen = new Set<string>();
  for (const [index, database] of config.databases.entries()) {
    if (seen.has(database.db)) yamlFields.fail(databases[index], `databases[${index}].db`, `db ${database.db} is listed twice`);
    seen.add(database.db);
  }
  if (top.has('addr')) config.addr = yamlFields.parsed(top.get('addr'), 'addr', addressArg);
  if (top.has('limits')) {
    const limits = yamlFields.map(top.get('limits'), 'limits', ['upload-concurrency', 'download-concurrency', 'memory-bytes']);
    if (limits.has('upload-concurrency')) config.limits.uploadConcurrency = yamlFields.integer(limits.get('upload-concurrency'), 'limits.upload-concurrency', 1, 4096);
    if (limits.has('download-concurrency')) config.limits.downloadConcurrency = yamlFields.integer(limits.get('download-concurrency'), 'limits.download-concurrency', 1, 4096);
    if (limits.has('memory-bytes')) config.limits.memoryBytes = yamlFields.size(limits.get('memory-bytes'), 'limits.memory-bytes', 1);
  }
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
