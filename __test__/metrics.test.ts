import { Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { GraphstreamMetrics } from '../ts/metrics.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses Prometheus text exposition (version 0.0.4), failing on any line that is not valid. */
function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) continue;
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(type);
      types.set(name!, type!);
      continue;
    }
    const match = SAMPLE_LINE.exec(line);
    expect(match, `invalid exposition line: ${line}`).not.toBeNull();
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match![2] ?? '').matchAll(LABEL)) labels[key!] = value!;
    const value = match![3] === '+Inf' ? Infinity : Number(match![3]);
    expect(Number.isNaN(value), `invalid value in: ${line}`).toBe(false);
    samples.push({ name: match![1]!, labels, value });
  }
  return { types, samples };
}

function valueOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  return exposition.samples.find(
    (sample) =>
      sample.name === name &&
      Object.keys(labels).length === Object.keys(sample.labels).filter((key) => key !== 'le').length &&
      Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  )?.value;
}

describe('GraphstreamMetrics', () => {
  it('exposes every metric, prefixed graphstream_, with its type, before anything is recorded', async () => {
    const metrics = new GraphstreamMetrics();
    const exposition = parseExposition(await metrics.toPrometheus());
    expect(Object.fromEntries(exposition.types)).toEqual({
      graphstream_entries_written_total: 'counter',
      graphstream_segments_sealed_total: 'counter',
      graphstream_segments_uploaded_total: 'counter',
      graphstream_upload_errors_total: 'counter',
      graphstream_upload_bytes_total: 'counter',
      graphstream_segments_downloaded_total: 'counter',
      graphstream_download_errors_total: 'counter',
      graphstream_chain_hash_mismatches_total: 'counter',
      graphstream_last_upload_timestamp_seconds: 'gauge',
      graphstream_last_upload_duration_seconds: 'gauge',
      graphstream_last_recovery_duration_seconds: 'gauge',
      graphstream_replication_lag_sequences: 'gauge',
      graphstream_replication_lag_seconds: 'gauge',
      graphstream_append_latency_seconds: 'histogram',
      graphstream_upload_latency_seconds: 'histogram',
      graphstream_lease_epoch: 'gauge',
      graphstream_lease_generation: 'gauge',
      graphstream_lease_seconds_to_expiry: 'gauge',
      graphstream_lease_renewals: 'gauge',
      graphstream_lease_fenced: 'gauge',
      graphstream_lease_holder_info: 'gauge',
    });
    expect(valueOf(exposition, 'graphstream_entries_written_total')).toBe(0);
    expect(valueOf(exposition, 'graphstream_upload_latency_seconds_count')).toBe(0);
  });

  it('exposes the state of an uploader\'s lease: holder, epoch, generation, seconds to expiry, renewals, fenced', async () => {
    const metrics = new GraphstreamMetrics({ db: 'graph' });
    metrics.recordLease({ holder: 'host/42/ab', epoch: 3, generation: 2, msToExpiry: 6500, renewals: 17, fenced: false });
    metrics.recordLease({ holder: 'host/42/ab', epoch: 3, generation: 2, msToExpiry: 0, renewals: 18, fenced: true });
    const text = await metrics.toPrometheus();
    expect(text).toContain('graphstream_lease_holder_info{db="graph",holder="host/42/ab"} 0'); // fenced: no longer holds it
    expect(text).toContain('graphstream_lease_epoch{db="graph"} 3');
    expect(text).toContain('graphstream_lease_generation{db="graph"} 2');
    expect(text).toContain('graphstream_lease_renewals{db="graph"} 18');
    expect(text).toContain('graphstream_lease_seconds_to_expiry{db="graph"} 0');
    expect(text).toContain('graphstream_lease_fenced{db="graph"} 1');

    // a handover inside one process (as in the demo): only the new holder's series remains
    metrics.recordLease({ holder: 'host/43/cd', epoch: 4, generation: 3, msToExpiry: 7000, renewals: 0, fenced: false });
    const after = await metrics.toPrometheus();
    expect(after).toContain('graphstream_lease_holder_info{db="graph",holder="host/43/cd"} 1');
    expect(after).not.toContain('holder="host/42/ab"');
  });

  it('records what each method says, in seconds where time is measured', async () => {
    const metrics = new GraphstreamMetrics();
    metrics.recordEntriesWritten(3);
    metrics.recordEntriesWritten(4);
    metrics.recordSegmentSealed();
    metrics.recordUpload(1000, 250, 1_700_000_000_000);
    metrics.recordUpload(500, 50, 1_700_000_001_000);
    metrics.recordUploadError();
    metrics.recordDownload();
    metrics.recordDownloadError();
    metrics.recordChainHashMismatch();
    metrics.observeAppendLatency(2);
    metrics.recordRecoveryDuration(1500);
    metrics.setReplicationLag(42, 3.5);

    const e = parseExposition(await metrics.toPrometheus());
    expect(valueOf(e, 'graphstream_entries_written_total')).toBe(7);
    expect(valueOf(e, 'graphstream_segments_sealed_total')).toBe(1);
    expect(valueOf(e, 'graphstream_segments_uploaded_total')).toBe(2);
    expect(valueOf(e, 'graphstream_upload_bytes_total')).toBe(1500);
    expect(valueOf(e, 'graphstream_upload_errors_total')).toBe(1);
    expect(valueOf(e, 'graphstream_segments_downloaded_total')).toBe(1);
    expect(valueOf(e, 'graphstream_download_errors_total')).toBe(1);
    expect(valueOf(e, 'graphstream_chain_hash_mismatches_total')).toBe(1);
    expect(valueOf(e, 'graphstream_last_upload_timestamp_seconds')).toBe(1_700_000_001);
    expect(valueOf(e, 'graphstream_last_upload_duration_seconds')).toBe(0.05);
    expect(valueOf(e, 'graphstream_last_recovery_duration_seconds')).toBe(1.5);
    expect(valueOf(e, 'graphstream_replication_lag_sequences')).toBe(42);
    expect(valueOf(e, 'graphstream_replication_lag_seconds')).toBe(3.5);
    expect(valueOf(e, 'graphstream_upload_latency_seconds_count')).toBe(2);
    expect(valueOf(e, 'graphstream_upload_latency_seconds_sum')).toBeCloseTo(0.3);
    expect(valueOf(e, 'graphstream_append_latency_seconds_count')).toBe(1);
    const appendBuckets = e.samples.filter((s) => s.name === 'graphstream_append_latency_seconds_bucket');
    expect(appendBuckets.find((s) => s.labels.le === '0.001')?.value).toBe(0);
    expect(appendBuckets.find((s) => s.labels.le === '0.0025')?.value).toBe(1);
    expect(appendBuckets.find((s) => s.labels.le === '+Inf')?.value).toBe(1);
  });

  it('registers on a given prom-client registry, one series per db label', async () => {
    const registry = new Registry();
    const orders = new GraphstreamMetrics({ registry, db: 'orders' });
    const users = new GraphstreamMetrics({ registry, db: 'users' });
    orders.recordEntriesWritten(5);
    users.recordEntriesWritten(2);
    users.recordUpload(10, 1);

    expect(orders.registry).toBe(registry);
    const e = parseExposition(await registry.metrics());
    expect(valueOf(e, 'graphstream_entries_written_total', { db: 'orders' })).toBe(5);
    expect(valueOf(e, 'graphstream_entries_written_total', { db: 'users' })).toBe(2);
    expect(valueOf(e, 'graphstream_segments_uploaded_total', { db: 'orders' })).toBe(0);
    expect(valueOf(e, 'graphstream_segments_uploaded_total', { db: 'users' })).toBe(1);
    expect(await orders.toPrometheus()).toBe(await registry.metrics());
    expect(orders.contentType).toContain('text/plain');
  });

  it('two replicas of one db on one registry: their series are told apart by the replica label, lease holders included', async () => {
    const registry = new Registry();
    const primary = new GraphstreamMetrics({ registry, db: 'graph', replica: 'primary' });
    const dr = new GraphstreamMetrics({ registry, db: 'graph', replica: 'dr' });
    primary.recordUpload(100, 5);
    primary.recordUpload(100, 5);
    dr.recordUpload(100, 5);
    primary.recordLease({ holder: 'host-a', epoch: 1, generation: 1, msToExpiry: 5000, renewals: 0, fenced: false });
    dr.recordLease({ holder: 'host-a', epoch: 7, generation: 3, msToExpiry: 5000, renewals: 0, fenced: false });
    // a handover on one replica leaves the other replica's holder series alone
    primary.recordLease({ holder: 'host-b', epoch: 2, generation: 2, msToExpiry: 5000, renewals: 0, fenced: false });
    const e = parseExposition(await registry.metrics());
    expect(valueOf(e, 'graphstream_segments_uploaded_total', { db: 'graph', replica: 'primary' })).toBe(2);
    expect(valueOf(e, 'graphstream_segments_uploaded_total', { db: 'graph', replica: 'dr' })).toBe(1);
    expect(valueOf(e, 'graphstream_lease_epoch', { db: 'graph', replica: 'primary' })).toBe(2);
    expect(valueOf(e, 'graphstream_lease_epoch', { db: 'graph', replica: 'dr' })).toBe(7);
    expect(valueOf(e, 'graphstream_lease_holder_info', { db: 'graph', replica: 'primary', holder: 'host-b' })).toBe(1);
    expect(valueOf(e, 'graphstream_lease_holder_info', { db: 'graph', replica: 'dr', holder: 'host-a' })).toBe(1);
    expect(valueOf(e, 'graphstream_lease_holder_info', { db: 'graph', replica: 'primary', holder: 'host-a' })).toBeUndefined();
    expect(() => new GraphstreamMetrics({ replica: 'dr' })).toThrow(/a replica label needs a db label/);
  });

  it('refuses a registry holding a same-named metric of another type', () => {
    const registry = new Registry();
    new Gauge({ name: 'graphstream_entries_written_total', help: 'not a counter', registers: [registry] });
    expect(() => new GraphstreamMetrics({ registry })).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
  });
});
