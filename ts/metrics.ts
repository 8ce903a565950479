/**
 * Prometheus metrics for every stage of the journal: appends, sealing, uploads, downloads,
 * recovery and replication lag. Recording methods are called on hot paths, so each one is a
 * single update of a pre-bound prom-client series.
 */
import { packageRequire } from './package-require.js';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { GraphstreamError } from './errors.js';

type PromClient = typeof import('prom-client');
let promClient: PromClient | null = null;

/** prom-client, loaded by the first GraphstreamMetrics: importing it costs ~9 MiB that only metrics users should pay. */
function loadPromClient(): PromClient {
  promClient ??= packageRequire('prom-client') as PromClient;
  return promClient;
}

export interface MetricsOptions {
  /** registry to register on; a new dedicated Registry by default */
  registry?: Registry;
  /** the `db` label of every series; none when omitted */
  db?: string;
  /**
   * the `replica` label of every series (with `db`): which of a db's destinations, so that two
   * replicas of one db (one GraphstreamMetrics each, on one registry) give two series, not one
   */
  replica?: string;
}

const LABEL_NAMES = ['db', 'replica'] as const;
type LabelName = (typeof LABEL_NAMES)[number];

const APPEND_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const UPLOAD_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** A lease as GraphstreamMetrics.recordLease exposes it. */
export interface LeaseSnapshot {
  holder: string;
  epoch: number;
  generation: number;
  /** until the holder's local deadline; 0 when not held */
  msToExpiry: number;
  renewals: number;
  fenced: boolean;
}

interface CounterSeries {
  inc(value?: number): void;
}
interface GaugeSeries {
  set(value: number): void;
}
interface HistogramSeries {
  observe(value: number): void;
}

export class GraphstreamMetrics {
  readonly registry: Registry;
  readonly db: string | undefined;
  readonly replica: string | undefined;

  private readonly entriesWritten: CounterSeries;
  private readonly segmentsSealed: CounterSeries;
  private readonly segmentsUploaded: CounterSeries;
  private readonly uploadErrors: CounterSeries;
  private readonly uploadBytes: CounterSeries;
  private readonly segmentsDownloaded: CounterSeries;
  private readonly downloadErrors: CounterSeries;
  private readonly chainHashMismatches: CounterSeries;
  private readonly lastUploadTimestamp: GaugeSeries;
  private readonly lastUploadDuration: GaugeSeries;
  private readonly lastRecoveryDuration: GaugeSeries;
  private readonly replicationLagSequences: GaugeSeries;
  private readonly replicationLagSeconds: GaugeSeries;
  private readonly appendLatency: HistogramSeries;
  private readonly uploadLatency: HistogramSeries;
  private readonly leaseEpoch: GaugeSeries;
  private readonly leaseGeneration: GaugeSeries;
  private readonly leaseSecondsToExpiry: GaugeSeries;
  private readonly leaseRenewals: GaugeSeries;
  private readonly leaseFenced: GaugeSeries;
  private readonly leaseHolder: Gauge<LabelName | 'holder'>;
  /** the holder label of this instance's lease_holder_info series, once recorded */
  private holderShown: string | null = null;
  private readonly labels: Partial<Record<LabelName, string>> | undefined;

  constructor(options: MetricsOptions = {}) {
    const { Counter, Gauge, Histogram, Registry } = loadPromClient();
    this.registry = options.registry ?? new Registry();
    this.db = options.db;
    this.replica = options.replica;
    if (options.replica !== undefined && options.db === undefined) throw new GraphstreamError('invalid_argument', 'metrics: a replica label needs a db label');
    const labels: Partial<Record<LabelName, string>> | undefined =
      options.db === undefined ? undefined : options.replica === undefined ? { db: options.db } : { db: options.db, replica: options.replica };

    const counter = (name: string, help: string): CounterSeries => {
      const metric = this.metric(name, Counter, () => new Counter({ name, help, labelNames: LABEL_NAMES, registers: [this.registry] }));
      const series = labels ? metric.labels(labels) : { inc: (value?: number) => metric.inc(value) };
      series.inc(0);
      return series;
    };
    const gauge = (name: string, help: string): GaugeSeries => {
      const metric = this.metric(name, Gauge, () => new Gauge({ name, help, labelNames: LABEL_NAMES, registers: [this.registry] }));
      return labels ? metric.labels(labels) : { set: (value: number) => metric.set(value) };
    };
    const histogram = (name: string, help: string, buckets: number[]): HistogramSeries => {
      const metric = this.metric(
        name,
        Histogram,
        () => new Histogram({ name, help, buckets, labelNames: LABEL_NAMES, registers: [this.registry] }),
      );
      metric.zero(labels ?? {});
      return labels ? metric.labels(labels) : { observe: (value: number) => metric.observe(value) };
    };

    this.entriesWritten = counter('graphstream_entries_written_total', 'Journal entries appended');
    this.segmentsSealed = counter('graphstream_segments_sealed_total', 'Journal segments sealed');
    this.segmentsUploaded = counter('graphstream_segments_uploaded_total', 'Sealed segments confirmed in object storage');
    this.uploadErrors = counter('graphstream_upload_errors_total', 'Segment uploads that failed after their retries');
    this.uploadBytes = counter('graphstream_upload_bytes_total', 'Bytes of segments confirmed in object storage');
    this.segmentsDownloaded = counter('graphstream_segments_downloaded_total', 'Segments downloaded and verified by a follower');
    this.downloadErrors = counter('graphstream_download_errors_total', 'Segment downloads that failed');
    this.chainHashMismatches = counter('graphstream_chain_hash_mismatches_total', 'Segments whose hash chain did not continue the one already applied');
    this.lastUploadTimestamp = gauge('graphstream_last_upload_timestamp_seconds', 'Unix time of the last confirmed segment upload');
    this.lastUploadDuration = gauge('graphstream_last_upload_duration_seconds', 'Duration of the last confirmed segment upload, retries included');
    this.lastRecoveryDuration = gauge('graphstream_last_recovery_duration_seconds', 'Duration of the last journal recovery');
    this.replicationLagSequences = gauge('graphstream_replication_lag_sequences', 'Sequences the follower is behind the newest one in storage');
    this.replicationLagSeconds = gauge('graphstream_replication_lag_seconds', 'Age (header created_ms) of the segment holding the next entry the follower applies; 0 when caught up');
    this.appendLatency = histogram('graphstream_append_latency_seconds', 'Time from append call to durable entry', APPEND_BUCKETS_SECONDS);
    this.uploadLatency = histogram('graphstream_upload_latency_seconds', 'Time to upload one segment, retries included', UPLOAD_BUCKETS_SECONDS);
    this.leaseEpoch = gauge('graphstream_lease_epoch', 'Epoch of the lease the uploader holds (the fencing token)');
    this.leaseGeneration = gauge('graphstream_lease_generation', 'Generation the lease holder uploads into');
    this.leaseSecondsToExpiry = gauge('graphstream_lease_seconds_to_expiry', "Seconds until the holder's local lease deadline, as of its last renewal or upload cycle; 0 when not held");
    this.leaseRenewals = gauge('graphstream_lease_renewals', 'Renewals of the lease held');
    this.leaseFenced = gauge('graphstream_lease_fenced', '1 once the uploader lost its lease (fenced): it uploads nothing more');
    this.leaseHolder = this.metric(
      'graphstream_lease_holder_info',
      Gauge,
      () =>
        new Gauge({
          name: 'graphstream_lease_holder_info',
          help: 'The lease holder (label holder) of this uploader: 1 while it holds the lease',
          labelNames: [...LABEL_NAMES, 'holder'],
          registers: [this.registry],
        }),
    ) as Gauge<LabelName | 'holder'>;
    this.labels = labels;
  }

  /** Reuses a metric another GraphstreamMetrics (e.g. for another db) registered on the same registry. */
  private metric<M extends Counter<LabelName> | Gauge<LabelName> | Histogram<LabelName>>(
    name: string,
    kind: abstract new (...args: never[]) => M,
    create: () => M,
  ): M {
    const existing = this.registry.getSingleMetric(name);
    if (existing === undefined) return create();
    if (!(existing instanceof kind)) {
      throw new GraphstreamError('invalid_argument', `metrics: registry already has a metric named ${name} of another type`);
    }
    return existing;
  }

  recordEntriesWritten(count: number): void {
    this.entriesWritten.inc(count);
  }

  recordSegmentSealed(): void {
    this.segmentsSealed.inc();
  }

  /** A segment confirmed in storage: `durationMs` covers the whole upload, retries included. */
  recordUpload(bytes: number, durationMs: number, nowMs: number = Date.now()): void {
    this.segmentsUploaded.inc();
    this.uploadBytes.inc(bytes);
    this.lastUploadTimestamp.set(nowMs / 1000);
    this.lastUploadDuration.set(durationMs / 1000);
    this.uploadLatency.observe(durationMs / 1000);
  }

  recordUploadError(): void {
    this.uploadErrors.inc();
  }

  recordDownload(): void {
    this.segmentsDownloaded.inc();
  }

  recordDownloadError(): void {
    this.downloadErrors.inc();
  }

  recordChainHashMismatch(): void {
    this.chainHashMismatches.inc();
  }

  observeAppendLatency(durationMs: number): void {
    this.appendLatency.observe(durationMs / 1000);
  }

  recordRecoveryDuration(durationMs: number): void {
    this.lastRecoveryDuration.set(durationMs / 1000);
  }

  setReplicationLag(sequences: number, seconds: number): void {
    this.replicationLagSequences.set(sequences);
    this.replicationLagSeconds.set(seconds);
  }

  /** The state of the lease an uploader holds. */
  recordLease(lease: LeaseSnapshot): void {
    this.leaseEpoch.set(lease.epoch);
    this.leaseGeneration.set(lease.generation);
    this.leaseSecondsToExpiry.set(lease.msToExpiry / 1000);
    this.leaseRenewals.set(lease.renewals);
    this.leaseFenced.set(lease.fenced ? 1 : 0);
    // one series per db and replica: the holder this uploader last knew, 1 while it holds the
    // lease (a handover in one process, as in the demo, must not leave the old holder's series
    // at 1); the series of other dbs and replicas on the registry are left alone
    if (this.holderShown !== null && this.holderShown !== lease.holder) this.leaseHolder.remove({ ...this.labels, holder: this.holderShown });
    this.holderShown = lease.holder;
    this.leaseHolder.set({ ...this.labels, holder: lease.holder }, lease.msToExpiry > 0 && !lease.fenced ? 1 : 0);
  }

  /** Content-Type of toPrometheus()'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Everything in the registry, in Prometheus text exposition format. */
  toPrometheus(): Promise<string> {
    return this.registry.metrics();
  }
}
