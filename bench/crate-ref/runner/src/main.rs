//! The published `graphstream` 0.3 crate measured on the bench's own entries and segment, as a
//! child process of `npm run bench` (bench/groups/crate.ts). Prints one JSON object on stdout.
//!
//! `crate-ref writer <entries.jsonl> <dir> <segment_max_bytes>`: `spawn_journal_writer` writes
//! every entry (one `JournalCommand::Write` each, sent back to back), then `Shutdown` seals the
//! live segment; timed until the writer thread has exited (`JournalState::is_alive`). Rotations
//! seal on the writer thread (the crate's design), with one fsync per sealed segment; no append
//! is fsynced (the periodic `sync_data` only runs when the channel stays empty for `fsync_ms`).
//!
//! `crate-ref seal <unsealed segment> <min_ms> <sealed out>`: the crate's sealing of a segment, in
//! memory: what its private `seal_segment` does between reading the file and rewriting it
//! (`decode_entry` of every entry, `hadb_changeset::journal::seal`, `encode_compressed` at zstd 3),
//! repeated for at least `min_ms`; writes the last sealed form to `<sealed out>`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use graphstream::graphd::JournalEntry as ProtoEntry;
use graphstream::journal::{JournalCommand, JournalState, PendingEntry};
use graphstream::types::{param_values_to_map_entries, ParamValue};
use hadb_changeset::journal::{decode_entry, encode_compressed, hash_to_u64, seal, HEADER_SIZE};
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    query: String,
    params: Vec<(String, ParamValue)>,
}

fn fail(message: String) -> ! {
    eprintln!("crate-ref: {message}");
    std::process::exit(1);
}

fn writer(entries_file: &str, dir: &str, segment_max_bytes: u64) {
    let text = std::fs::read_to_string(entries_file)
        .unwrap_or_else(|err| fail(format!("reading {entries_file}: {err}")));
    let inputs: Vec<Input> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| fail(format!("entry: {err}"))))
        .collect();
    // the protobuf payload the crate's writer makes of each entry (sequence and a current
    // timestamp, as it does), summed: the bench checks that its own encoding is as long
    let now = graphstream::current_timestamp_ms();
    let payload_bytes: usize = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            prost::Message::encoded_len(&ProtoEntry {
                sequence: i as u64 + 1,
                query: input.query.clone(),
                params: param_values_to_map_entries(&input.params),
                timestamp_ms: now,
            })
        })
        .sum();
    let entries: Vec<PendingEntry> = inputs
        .into_iter()
        .map(|input| PendingEntry {
            query: input.query,
            params: input.params,
        })
        .collect();
    let count = entries.len();
    let state = Arc::new(JournalState::with_sequence_and_hash(0, [0u8; 32]));
    // an hour: the periodic sync_data never runs while entries keep coming
    let fsync_ms = 3_600_000;
    let start = Instant::now();
    let cpu_start = process_cpu_seconds();
    let sender = graphstream::spawn_journal_writer(
        PathBuf::from(dir),
        segment_max_bytes,
        fsync_ms,
        Arc::clone(&state),
    );
    for entry in entries {
        if sender.send(JournalCommand::Write(entry)).is_err() {
            fail("the journal writer stopped".into());
        }
    }
    let _ = sender.send(JournalCommand::Shutdown);
    while state.is_alive() {
        std::thread::sleep(Duration::from_micros(50));
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds() - cpu_start;
    let written = state.sequence.load(std::sync::atomic::Ordering::SeqCst);
    if written != count as u64 {
        fail(format!("the writer wrote {written} of {count} entries"));
    }
    let segments = std::fs::read_dir(dir)
        .map(|list| {
            list.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".hadbj"))
                .count()
        })
        .unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({
            "entries": count,
            "seconds": seconds,
            "entriesPerSecond": count as f64 / seconds,
            "payloadBytes": payload_bytes,
            "segments": segments,
            "cpuSeconds": cpu_seconds,
        })
    );
}

/// CPU time of every thread of this process so far (utime + stime of /proc/self/stat, in clock
/// ticks of 1/100 s; Linux), for the CPU a run costs beside its wall time; 0 where unreadable.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    // the fields after the name start at field 3 (state): utime and stime are fields 14 and 15
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn seal_once(unsealed: &[u8]) -> Vec<u8> {
    let body = &unsealed[HEADER_SIZE..];
    let mut entries = Vec::new();
    let mut offset = 0;
    while offset < body.len() {
        let (entry, consumed) = decode_entry(body, offset)
            .unwrap_or_else(|err| fail(format!("decode_entry during seal: {err}")));
        entries.push(entry);
        offset += consumed;
    }
    if entries.is_empty() {
        fail("the segment has no entries".into());
    }
    // the crate passes the chain hash before the segment; the bench's segment starts the chain
    let segment = seal(entries, hash_to_u64(&entries_prev_hash(body)));
    encode_compressed(&segment, 3)
}

/// The first entry's prev_hash: the chain hash before the segment.
fn entries_prev_hash(body: &[u8]) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&body[16..48]);
    hash
}

fn seal_bench(file: &str, min_ms: u64, out: &str) {
    let unsealed = std::fs::read(file).unwrap_or_else(|err| fail(format!("reading {file}: {err}")));
    if unsealed.len() <= HEADER_SIZE + 48 {
        fail(format!("{file} holds no entries"));
    }
    let mut times = Vec::new();
    let start = Instant::now();
    let mut sealed = Vec::new();
    while start.elapsed() < Duration::from_millis(min_ms) || times.is_empty() {
        let t0 = Instant::now();
        sealed = seal_once(&unsealed);
        times.push(t0.elapsed().as_secs_f64());
    }
    let total = start.elapsed().as_secs_f64();
    std::fs::write(out, &sealed).unwrap_or_else(|err| fail(format!("writing {out}: {err}")));
    times.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "calls": times.len(),
            "msPerSeal": total / times.len() as f64 * 1000.0,
            "medianMs": times[times.len() / 2] * 1000.0,
            "mbPerSecond": unsealed.len() as f64 * times.len() as f64 / total / 1e6,
            "sealedBytes": sealed.len(),
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["writer", entries, dir, max] => writer(
            entries,
            dir,
            max.parse()
                .unwrap_or_else(|_| fail(format!("bad segment size {max}"))),
        ),
        ["seal", file, min_ms, out] => seal_bench(
            file,
            min_ms
                .parse()
                .unwrap_or_else(|_| fail(format!("bad min_ms {min_ms}"))),
            out,
        ),
        _ => fail(
            "usage: crate-ref writer <entries.jsonl> <dir> <segment_max_bytes> | crate-ref seal <unsealed> <min_ms> <sealed out>".into(),
        ),
    }
}
