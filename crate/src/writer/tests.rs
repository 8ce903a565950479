use super::*;
use crate::format::{encode_entries, ZERO_HASH};
use crate::sealer::MAX_SEAL_BACKLOG;
use crate::segment::{decode_segment, DecodeOptions, DecodedSegment};
use std::future::Future;

type Answer<T> = std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send>>;

/// The writer's answers as futures, the way the tests await them.
trait Answers {
    fn appended(&self, batch: PayloadBatch) -> Answer<AppendedBatch>;
    fn flushed(&self) -> Answer<()>;
    fn sealed(&self) -> Answer<Option<PathBuf>>;
    fn closed(&self) -> Answer<()>;
}

fn answer<T: Send + 'static>(ask: impl FnOnce(Box<dyn FnOnce(Result<T>) + Send>)) -> Answer<T> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    ask(Box::new(move |result| drop(reply.send(result))));
    Box::pin(async move { answer.await.expect("the writer answers every request") })
}

impl Answers for Writer {
    fn appended(&self, batch: PayloadBatch) -> Answer<AppendedBatch> {
        answer(|reply| self.append(batch, reply))
    }
    fn flushed(&self) -> Answer<()> {
        answer(|reply| self.flush(reply))
    }
    fn sealed(&self) -> Answer<Option<PathBuf>> {
        answer(|reply| self.seal_for_upload(reply))
    }
    fn closed(&self) -> Answer<()> {
        answer(|reply| self.close(reply))
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("test runtime")
        .block_on(future)
}

fn options(max_segment_bytes: u64, durability: Durability) -> WriterOptions {
    WriterOptions {
        max_segment_bytes,
        level: 3,
        durability,
        fsync_interval: Duration::from_millis(100),
        queue_capacity: 1024,
    }
}

fn fresh() -> WriterStart {
    WriterStart {
        sequence: 0,
        chain_hash: ZERO_HASH,
        live_segment: None,
        retired_segments: Vec::new(),
    }
}

fn payload(sequence: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (sequence as usize * 31 + i) as u8)
        .collect()
}

fn one(payload: Vec<u8>) -> PayloadBatch {
    [payload].into_iter().collect()
}

/// Every segment of `dir` in name order, decoded and checked to form one chain from
/// sequence 1; returns them with the payload of every entry.
fn read_journal(dir: &Path) -> (Vec<DecodedSegment>, Vec<Vec<u8>>) {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "hadbj"))
        .collect();
    names.sort();
    let mut chain = ZERO_HASH;
    let mut next = 1;
    let mut segments = Vec::new();
    let mut payloads = Vec::new();
    for path in names {
        let segment = decode_segment(&fs::read(&path).unwrap(), &DecodeOptions::default())
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert_eq!(path.file_name().unwrap(), segment_file_name(next).as_str());
        assert_eq!(segment.header.first_seq, next);
        assert_eq!(
            segment.start_hash,
            chain,
            "chain continues into {}",
            path.display()
        );
        for &offset in &segment.entry_offsets {
            let entry = crate::format::decode_entry(&segment.body, offset as usize).unwrap();
            assert_eq!(entry.sequence, next);
            let bytes =
                &segment.body[entry.payload_offset..entry.payload_offset + entry.payload_len];
            payloads.push(bytes.to_vec());
            next += 1;
        }
        chain = segment.chain_hash;
        segments.push(segment);
    }
    (segments, payloads)
}

fn chain_of(payloads: &[Vec<u8>]) -> Vec<[u8; 32]> {
    let mut chain = ZERO_HASH;
    payloads
        .iter()
        .map(|payload| {
            chain = entry_hash(&chain, payload);
            chain
        })
        .collect()
}

#[test]
fn group_commit_writes_queued_appends_with_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::Fsync)).unwrap();
    // The writer thread publishes each group's result under this lock: holding it stops
    // the thread after at most one group while all 500 appends queue up behind it.
    let held = lock(&writer.shared.chain_hash);
    let appends: Vec<_> = (1..=500)
        .map(|seq| writer.appended(one(payload(seq, 40))))
        .collect();
    drop(held);
    let expected = chain_of(&(1..=500).map(|seq| payload(seq, 40)).collect::<Vec<_>>());
    for (i, append) in appends.into_iter().enumerate() {
        let batch = block_on(append).unwrap();
        assert_eq!(batch.first_sequence, i as u64 + 1);
        assert_eq!(batch.chain_hashes, expected[i]);
    }
    let stats = writer.stats();
    assert!(
        stats.syncs <= 2,
        "500 queued appends took {} fsyncs",
        stats.syncs
    );
    assert!(
        stats.batches <= 2,
        "500 queued appends took {} writes",
        stats.batches
    );
    assert_eq!(writer.sequence(), 500);
    assert_eq!(writer.chain_hash(), expected[499]);
    block_on(writer.closed()).unwrap();
    let (_, payloads) = read_journal(dir.path());
    assert_eq!(payloads.len(), 500);
}

#[test]
fn concurrent_appenders_get_gapless_sequences_in_call_order() {
    let dir = tempfile::tempdir().unwrap();
    let writer =
        Arc::new(Writer::open(dir.path(), fresh(), options(16 << 10, Durability::Fsync)).unwrap());
    let threads: Vec<_> = (0..8u8)
        .map(|thread| {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || {
                let appends: Vec<_> = (0..100u8)
                    .map(|i| writer.appended(one(vec![thread, i])))
                    .collect();
                appends
                    .into_iter()
                    .map(|append| block_on(append).unwrap().first_sequence)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for thread in threads {
        let sequences = thread.join().unwrap();
        assert!(sequences.windows(2).all(|pair| pair[0] < pair[1]));
        all.extend(sequences);
    }
    all.sort();
    assert_eq!(all, (1..=800).collect::<Vec<u64>>());
    block_on(writer.closed()).unwrap();
    let (segments, payloads) = read_journal(dir.path());
    assert_eq!(payloads.len(), 800);
    assert!(segments.len() > 1, "16 KiB segments rotated");
}

#[test]
fn an_entry_exactly_filling_a_segment_stays_and_the_next_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let entry = (ENTRY_HEADER_SIZE + 100) as u64;
    let max = HEADER_LEN + 2 * entry;
    let writer = Writer::open(dir.path(), fresh(), options(max, Durability::Fsync)).unwrap();
    for seq in 1..=2 {
        block_on(writer.appended(one(payload(seq, 100)))).unwrap();
    }
    let first = dir.path().join(segment_file_name(1));
    assert_eq!(
        fs::metadata(&first).unwrap().len(),
        max,
        "two entries fill it exactly"
    );
    assert_eq!(writer.stats().segments_sealed, 0);
    let third = block_on(writer.appended(one(payload(3, 100)))).unwrap();
    assert_eq!(third.first_sequence, 3);
    let live = dir.path().join(segment_file_name(3));
    assert_eq!(
        entries_of_live(&live),
        (HEADER_LEN + entry, vec![3]),
        "one entry in the new segment (its zeros written ahead are no entry)"
    );
    block_on(writer.closed()).unwrap();
    assert_eq!(writer.stats().segments_sealed, 2);
    let (segments, payloads) = read_journal(dir.path());
    assert_eq!(segments.len(), 2);
    assert!(segments[0].header.is_sealed());
    assert_eq!(
        (segments[0].header.first_seq, segments[0].header.last_seq),
        (1, 2)
    );
    assert_eq!(
        payloads,
        (1..=3).map(|seq| payload(seq, 100)).collect::<Vec<_>>()
    );
}

/// A live segment read the way recovery and readers read one (a torn tail allowed): its valid
/// length and the sequences of its entries.
fn entries_of_live(path: &Path) -> (u64, Vec<u64>) {
    let opts = DecodeOptions {
        allow_torn_tail: true,
        ..DecodeOptions::default()
    };
    let segment = decode_segment(&fs::read(path).unwrap(), &opts).unwrap();
    let sequences = segment
        .entry_offsets
        .iter()
        .map(|&offset| {
            crate::format::decode_entry(&segment.body, offset as usize)
                .unwrap()
                .sequence
        })
        .collect();
    (segment.valid_length as u64, sequences)
}

#[test]
fn under_fsync_the_live_segment_is_written_ahead_with_zeros_and_cut_when_it_retires() {
    let dir = tempfile::tempdir().unwrap();
    let entry = (ENTRY_HEADER_SIZE + 1000) as u64;
    // under PREALLOCATE_STEP: preallocated to the limit, which 100 entries do not fill exactly
    let max = HEADER_LEN + 100 * entry + 500;
    let writer = Writer::open(dir.path(), fresh(), options(max, Durability::Fsync)).unwrap();
    // retired segments wait unsealed (the idle-class sealer is held) until close
    writer.shared.hold_idle_seals.store(true, Ordering::SeqCst);
    block_on(writer.appended(one(payload(1, 1000)))).unwrap();
    let first = dir.path().join(segment_file_name(1));
    let bytes = fs::read(&first).unwrap();
    assert_eq!(
        bytes.len() as u64,
        max,
        "zeros written up to the segment limit"
    );
    assert!(
        bytes[(HEADER_LEN + entry) as usize..]
            .iter()
            .all(|&b| b == 0),
        "what follows the entry is zeros"
    );
    assert_eq!(entries_of_live(&first), (HEADER_LEN + entry, vec![1]));
    let syncs = writer.stats().syncs;
    for seq in 2..=100 {
        block_on(writer.appended(one(payload(seq, 1000)))).unwrap();
    }
    assert_eq!(
        fs::metadata(&first).unwrap().len(),
        max,
        "appends overwrite the zeros"
    );
    assert_eq!(
        entries_of_live(&first),
        (HEADER_LEN + 100 * entry, (1..=100).collect())
    );
    assert_eq!(
        writer.stats().syncs,
        syncs + 99,
        "one fdatasync per append, as before"
    );
    // the next entry rotates: the retired segment is cut to its header and entries, exactly
    // what the sealer got before preallocation
    block_on(writer.appended(one(payload(101, 1000)))).unwrap();
    assert_eq!(writer.stats().segments_sealed, 0, "the seal is held");
    let retired = fs::read(&first).unwrap();
    assert_eq!(retired.len() as u64, HEADER_LEN + 100 * entry);
    let opts = DecodeOptions::default();
    assert_eq!(
        decode_segment(&retired, &opts).unwrap().entry_offsets.len(),
        100
    );
    let second = dir.path().join(segment_file_name(101));
    assert_eq!(fs::metadata(&second).unwrap().len(), max);
    assert_eq!(entries_of_live(&second), (HEADER_LEN + entry, vec![101]));
    writer.shared.hold_idle_seals.store(false, Ordering::SeqCst);
    block_on(writer.closed()).unwrap();
    let sealed = fs::read(&first).unwrap();
    let level = options(max, Durability::Fsync).level;
    assert_eq!(
        sealed,
        crate::segment::seal_segment(&retired, level, DEFAULT_MAX_BODY_BYTES).unwrap(),
        "sealed byte for byte from the cut segment"
    );
    let (segments, payloads) = read_journal(dir.path());
    assert_eq!(segments.len(), 2);
    assert!(segments.iter().all(|segment| segment.header.is_sealed()));
    assert_eq!(
        payloads,
        (1..=101).map(|seq| payload(seq, 1000)).collect::<Vec<_>>()
    );
}

#[test]
fn a_close_cuts_the_zeros_of_a_live_segment_that_was_not_sealed_yet() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(8 << 20, Durability::Fsync)).unwrap();
    for seq in 1..=3 {
        block_on(writer.appended(one(payload(seq, 100)))).unwrap();
    }
    let live = dir.path().join(segment_file_name(1));
    assert_eq!(
        fs::metadata(&live).unwrap().len(),
        HEADER_LEN + (ENTRY_HEADER_SIZE as u64 + 100) + PREALLOCATE_STEP,
        "one step of zeros after the entry that passed the end of the file"
    );
    block_on(writer.closed()).unwrap();
    let (segments, payloads) = read_journal(dir.path());
    assert_eq!(segments.len(), 1);
    assert_eq!(payloads.len(), 3);
}

#[test]
fn without_fsync_nothing_is_written_ahead() {
    for durability in [Durability::None, Durability::Interval] {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::open(dir.path(), fresh(), options(8 << 20, durability)).unwrap();
        for seq in 1..=3 {
            block_on(writer.appended(one(payload(seq, 100)))).unwrap();
        }
        let live = dir.path().join(segment_file_name(1));
        assert_eq!(
            fs::metadata(&live).unwrap().len(),
            HEADER_LEN + 3 * (ENTRY_HEADER_SIZE as u64 + 100)
        );
        block_on(writer.closed()).unwrap();
    }
}

#[test]
fn an_entry_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(400, Durability::Fsync)).unwrap();
    let sizes = [10, 1000, 10, 10, 5000];
    for (i, &len) in sizes.iter().enumerate() {
        let seq = i as u64 + 1;
        let batch = block_on(writer.appended(one(payload(seq, len)))).unwrap();
        assert_eq!(batch.first_sequence, seq);
    }
    block_on(writer.closed()).unwrap();
    let (segments, payloads) = read_journal(dir.path());
    let ranges: Vec<(u64, u64)> = segments
        .iter()
        .map(|segment| (segment.header.first_seq, segment.header.last_seq))
        .collect();
    assert_eq!(ranges, [(1, 1), (2, 2), (3, 4), (5, 5)]);
    assert!(segments.iter().all(|segment| segment.header.is_sealed()));
    let expected: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| payload(i as u64 + 1, len))
        .collect();
    assert_eq!(payloads, expected);
}

#[test]
fn a_batch_split_by_rotation_keeps_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let entry = (ENTRY_HEADER_SIZE + 50) as u64;
    let writer = Writer::open(
        dir.path(),
        fresh(),
        options(HEADER_LEN + 2 * entry, Durability::None),
    )
    .unwrap();
    let payloads: Vec<Vec<u8>> = (1..=5).map(|seq| payload(seq, 50)).collect();
    let batch = block_on(writer.appended(payloads.iter().collect())).unwrap();
    assert_eq!(batch.first_sequence, 1);
    assert_eq!(batch.chain_hashes, chain_of(&payloads).concat());
    assert_eq!(
        writer.stats().syncs,
        2,
        "durability 'none' syncs entries only in the two segments it retires"
    );
    block_on(writer.closed()).unwrap();
    let (segments, read) = read_journal(dir.path());
    assert_eq!(segments.len(), 3);
    assert_eq!(read, payloads);
    assert_eq!(segments[2].chain_hash, writer.chain_hash());
}

#[test]
fn close_seals_and_later_calls_report_closed() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::Interval)).unwrap();
    let payloads: Vec<Vec<u8>> = (1..=3).map(|seq| payload(seq, 64)).collect();
    block_on(writer.appended(payloads.iter().collect())).unwrap();
    block_on(writer.closed()).unwrap();
    assert!(!writer.alive());
    let (segments, read) = read_journal(dir.path());
    assert_eq!(segments.len(), 1);
    assert!(segments[0].header.is_sealed());
    assert_eq!(
        segments[0].header.compression,
        crate::format::COMPRESSION_ZSTD
    );
    assert_eq!(read, payloads);
    assert_eq!(segments[0].chain_hash, writer.chain_hash());

    let err = block_on(writer.appended(one(payload(4, 1)))).unwrap_err();
    assert_eq!(err.code, ErrorCode::Closed);
    assert_eq!(
        block_on(writer.flushed()).unwrap_err().code,
        ErrorCode::Closed
    );
    assert_eq!(
        block_on(writer.sealed()).unwrap_err().code,
        ErrorCode::Closed
    );
    block_on(writer.closed()).unwrap();
    assert_eq!(writer.sequence(), 3);
}

#[test]
fn appends_queued_before_close_are_written_and_later_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::Fsync)).unwrap();
    let before = writer.appended(one(payload(1, 8)));
    let closing = writer.closed();
    let after = writer.appended(one(payload(2, 8)));
    assert_eq!(block_on(before).unwrap().first_sequence, 1);
    block_on(closing).unwrap();
    assert_eq!(block_on(after).unwrap_err().code, ErrorCode::Closed);
    assert_eq!(read_journal(dir.path()).1.len(), 1);
}

#[test]
fn the_lock_refuses_a_second_writer_until_close() {
    let dir = tempfile::tempdir().unwrap();
    let first = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::Fsync)).unwrap();
    let refused = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::Fsync));
    assert_eq!(refused.err().map(|err| err.code), Some(ErrorCode::Locked));
    block_on(first.closed()).unwrap();
    let second = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::Fsync)).unwrap();
    block_on(second.closed()).unwrap();
}

#[test]
fn lock_files_name_their_holder_by_pid_and_optionally_boot_and_start_time() {
    let holder = |pid, started: Option<(&str, u64)>| LockHolder {
        pid,
        started: started.map(|(boot, start)| (boot.to_string(), start)),
    };
    assert_eq!(LockHolder::parse("42"), Some(holder(42, None)));
    assert_eq!(LockHolder::parse("42\n"), Some(holder(42, None)));
    assert_eq!(
        LockHolder::parse("42 0f1e-2d 1234\n"),
        Some(holder(42, Some(("0f1e-2d", 1234))))
    );
    assert_eq!(LockHolder::parse("42 0f1e-2d"), Some(holder(42, None)));
    assert_eq!(LockHolder::parse("42 0f1e-2d soon"), Some(holder(42, None)));
    for unusable in ["", "\n", "0", "-3", "pid", "99999999999"] {
        assert_eq!(LockHolder::parse(unusable), None, "{unusable:?}");
    }
    let written = holder(7, Some(("b00t", 99)));
    assert_eq!(LockHolder::parse(&written.to_content()), Some(written));
    assert_eq!(
        LockHolder::parse(&holder(7, None).to_content()),
        Some(holder(7, None))
    );
}

#[test]
fn the_start_time_is_field_22_of_proc_stat_counted_after_the_command_name() {
    let fields_after_name = (3..=52).map(|field| field.to_string()).collect::<Vec<_>>();
    let stat = format!("123 (a (b) c) {}\n", fields_after_name.join(" "));
    assert_eq!(parse_start_time(&stat), Some(22));
    assert_eq!(parse_start_time("123 (sleep) S 1 2"), None);
    assert_eq!(parse_start_time("garbage"), None);
}

#[cfg(target_os = "linux")]
#[test]
fn a_live_pid_is_a_holder_only_with_the_recorded_boot_and_start_time() {
    let own = LockHolder::current();
    let (boot, start_time) = own.started.clone().expect("/proc names this process");
    let other_pid = |started: Option<(String, u64)>| LockHolder {
        pid: own.pid,
        started,
    };
    assert!(other_pid(None).alive());
    assert!(other_pid(Some((boot.clone(), start_time))).alive());
    assert!(!other_pid(Some((boot.clone(), start_time + 1))).alive());
    assert!(!other_pid(Some((format!("{boot}-before-reboot"), start_time))).alive());
}

#[test]
fn dropping_the_handle_closes_and_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::None)).unwrap();
    block_on(writer.appended(one(payload(1, 8)))).unwrap();
    drop(writer);
    // the background close takes the thread a moment; the lock is the signal it finished
    let reopened = (0..500)
        .find_map(
            |_| match Writer::open(dir.path(), fresh(), options(1 << 20, Durability::None)) {
                Ok(writer) => Some(writer),
                Err(err) => {
                    assert_eq!(err.code, ErrorCode::Locked);
                    std::thread::sleep(Duration::from_millis(10));
                    None
                }
            },
        )
        .expect("the dropped writer released its lock");
    drop(reopened);
    let (segments, _) = read_journal(dir.path());
    assert!(segments[0].header.is_sealed());
}

#[test]
fn continuing_a_live_segment_keeps_sequence_and_chain() {
    let dir = tempfile::tempdir().unwrap();
    let earlier: Vec<Vec<u8>> = (1..=3).map(|seq| payload(seq, 20)).collect();
    let (bytes, hashes) = encode_entries(1, &ZERO_HASH, &earlier);
    let path = dir.path().join(segment_file_name(1));
    let mut unsealed = Header::unsealed(1, now_ms()).encode().to_vec();
    unsealed.extend_from_slice(&bytes);
    fs::write(&path, &unsealed).unwrap();
    let start = WriterStart {
        sequence: 3,
        chain_hash: hashes[64..96].try_into().unwrap(),
        live_segment: Some(PathBuf::from(segment_file_name(1))),
        retired_segments: Vec::new(),
    };
    let writer = Writer::open(dir.path(), start, options(1 << 20, Durability::Fsync)).unwrap();
    assert_eq!(writer.sequence(), 3);
    let later: Vec<Vec<u8>> = (4..=5).map(|seq| payload(seq, 20)).collect();
    let batch = block_on(writer.appended(later.iter().collect())).unwrap();
    assert_eq!(batch.first_sequence, 4);
    let sealed = block_on(writer.sealed()).unwrap();
    assert_eq!(sealed, Some(path));
    assert_eq!(
        block_on(writer.sealed()).unwrap(),
        None,
        "nothing left to seal"
    );
    block_on(writer.closed()).unwrap();
    let (segments, read) = read_journal(dir.path());
    assert_eq!(segments.len(), 1);
    assert_eq!(read, [earlier, later].concat());
}

#[test]
fn retired_segments_of_the_start_are_sealed_before_the_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let earlier: Vec<Vec<u8>> = (1..=4).map(|seq| payload(seq, 20)).collect();
    let (bytes, hashes) = encode_entries(1, &ZERO_HASH, &earlier);
    let entry_len = ENTRY_HEADER_SIZE + 20;
    let mut retired = Header::unsealed(1, now_ms()).encode().to_vec();
    retired.extend_from_slice(&bytes[..3 * entry_len]);
    fs::write(dir.path().join(segment_file_name(1)), &retired).unwrap();
    let mut live = Header::unsealed(4, now_ms()).encode().to_vec();
    live.extend_from_slice(&bytes[3 * entry_len..]);
    fs::write(dir.path().join(segment_file_name(4)), &live).unwrap();
    let start = WriterStart {
        sequence: 4,
        chain_hash: hashes[96..128].try_into().unwrap(),
        live_segment: Some(PathBuf::from(segment_file_name(4))),
        retired_segments: vec![PathBuf::from(segment_file_name(1))],
    };
    let writer = Writer::open(dir.path(), start, options(1 << 20, Durability::Fsync)).unwrap();
    block_on(writer.appended(one(payload(5, 20)))).unwrap();
    block_on(writer.closed()).unwrap();
    assert_eq!(writer.stats().segments_sealed, 2);
    let (segments, read) = read_journal(dir.path());
    assert!(segments.iter().all(|segment| segment.header.is_sealed()));
    assert_eq!(
        read,
        (1..=5).map(|seq| payload(seq, 20)).collect::<Vec<_>>()
    );
}

#[test]
fn a_live_segment_that_cannot_continue_the_start_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(segment_file_name(7));
    fs::write(&path, Header::unsealed(7, now_ms()).encode()).unwrap();
    let start = WriterStart {
        sequence: 3,
        chain_hash: ZERO_HASH,
        live_segment: Some(path),
        retired_segments: Vec::new(),
    };
    let err = Writer::open(dir.path(), start, options(1 << 20, Durability::Fsync))
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::InvalidSegment);
}

#[test]
fn seal_for_upload_seals_and_the_next_append_opens_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::Fsync)).unwrap();
    assert_eq!(block_on(writer.sealed()).unwrap(), None);
    assert!(
        !dir.path().join(segment_file_name(1)).exists(),
        "no file before an append"
    );
    block_on(writer.appended(one(payload(1, 30)))).unwrap();
    let sealed = block_on(writer.sealed()).unwrap().unwrap();
    assert_eq!(sealed, dir.path().join(segment_file_name(1)));
    assert!(!dir
        .path()
        .join(format!("{}.seal.tmp", segment_file_name(1)))
        .exists());
    block_on(writer.appended(one(payload(2, 30)))).unwrap();
    assert!(dir.path().join(segment_file_name(2)).exists());
    block_on(writer.closed()).unwrap();
    assert_eq!(read_journal(dir.path()).1.len(), 2);
    assert_eq!(writer.stats().segments_sealed, 2);
}

/// A writer whose idle-class seals never start, as on a machine that is never idle.
fn writer_without_idle_time(dir: &Path) -> Writer {
    let writer = Writer::open(dir, fresh(), options(4096, Durability::None)).unwrap();
    writer.shared.hold_idle_seals.store(true, Ordering::SeqCst);
    writer
}

#[test]
fn a_seal_left_to_a_starved_idle_class_thread_is_made_when_someone_waits() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_without_idle_time(dir.path());
    // 100-byte entries: 40 of them fill a 4 KiB segment and retire it, unwaited
    for seq in 1..=40 {
        block_on(writer.appended(one(payload(seq, 100)))).unwrap();
    }
    let (reply, answer) = std::sync::mpsc::channel();
    writer.seal_for_upload(move |sealed| drop(reply.send(sealed)));
    answer
        .recv_timeout(Duration::from_secs(30))
        .expect("seal_for_upload answers although no idle-class seal runs")
        .unwrap();
    assert_eq!(writer.stats().segments_sealed, 2);
    writer.shared.hold_idle_seals.store(false, Ordering::SeqCst);
    block_on(writer.closed()).unwrap();
    let (segments, payloads) = read_journal(dir.path());
    assert_eq!(payloads.len(), 40);
    assert!(segments.iter().all(|segment| segment.header.is_sealed()));
}

#[test]
fn a_seal_left_to_a_starved_idle_class_thread_is_made_when_the_backlog_grows() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_without_idle_time(dir.path());
    // enough 100-byte entries to retire two 4 KiB segments, with nobody waiting
    for seq in 1..=70 {
        block_on(writer.appended(one(payload(seq, 100)))).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while writer.stats().segments_sealed < 2 {
        assert!(Instant::now() < deadline, "a growing backlog gets sealed");
        std::thread::sleep(Duration::from_millis(5));
    }
    writer.shared.hold_idle_seals.store(false, Ordering::SeqCst);
    block_on(writer.closed()).unwrap();
    assert_eq!(read_journal(dir.path()).1.len(), 70);
}

#[test]
fn a_failing_seal_leaves_segments_unsealed_is_reported_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    // a directory where the sealed temp file of segment 1 would go makes its sealing fail
    let blocker = dir
        .path()
        .join(format!("{}.seal.tmp", segment_file_name(1)));
    fs::create_dir(&blocker).unwrap();
    let two_entries = HEADER_LEN + 2 * (ENTRY_HEADER_SIZE as u64 + 100);
    let writer =
        Writer::open(dir.path(), fresh(), options(two_entries, Durability::Fsync)).unwrap();
    for seq in 1..=20 {
        block_on(writer.appended(one(payload(seq, 100)))).unwrap();
    }
    let err = block_on(writer.sealed()).unwrap_err();
    assert_eq!(err.code, ErrorCode::Io, "{}", err.message);
    assert!(
        err.message.contains(&segment_file_name(1)),
        "{}",
        err.message
    );
    assert!(writer.alive(), "a failed seal loses nothing");
    let first = fs::read(dir.path().join(segment_file_name(1))).unwrap();
    assert!(!Header::decode(&first[..HEADER_SIZE]).unwrap().is_sealed());
    // with the backlog full and sealing failing, the live segment grew past its limit
    let live = dir
        .path()
        .join(segment_file_name(2 * MAX_SEAL_BACKLOG as u64 + 1));
    assert!(fs::metadata(&live).unwrap().len() > two_entries);

    // the failed call retired the live segment too; the next one seals everything
    fs::remove_dir(&blocker).unwrap();
    block_on(writer.appended(one(payload(21, 100)))).unwrap();
    let sealed = block_on(writer.sealed()).unwrap();
    assert_eq!(sealed, Some(dir.path().join(segment_file_name(21))));
    assert_eq!(writer.stats().segments_sealed, MAX_SEAL_BACKLOG as u64 + 2);
    block_on(writer.closed()).unwrap();
    let (segments, payloads) = read_journal(dir.path());
    assert!(segments.iter().all(|segment| segment.header.is_sealed()));
    assert_eq!(
        payloads,
        (1..=21).map(|seq| payload(seq, 100)).collect::<Vec<_>>()
    );
}

#[test]
fn a_failed_segment_creation_rejects_its_batch_and_the_writer_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let squatter = dir.path().join(segment_file_name(1));
    fs::write(&squatter, b"not ours").unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::Fsync)).unwrap();
    let err = block_on(writer.appended(one(payload(1, 8)))).unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(
        fs::read(&squatter).unwrap(),
        b"not ours",
        "never overwritten"
    );
    assert!(writer.alive());
    assert_eq!(writer.sequence(), 0);
    fs::remove_file(&squatter).unwrap();
    let batch = block_on(writer.appended(one(payload(1, 8)))).unwrap();
    assert_eq!(
        batch.first_sequence, 1,
        "the rejected batch used no sequence"
    );
    block_on(writer.closed()).unwrap();
    assert_eq!(read_journal(dir.path()).1, [payload(1, 8)]);
}

#[test]
fn stamped_batches_carry_their_sequence_as_field_one() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::Fsync)).unwrap();
    block_on(writer.appended(one(payload(1, 8)))).unwrap();
    let messages: Vec<Vec<u8>> = vec![vec![0x12, 0x01, b'q'], vec![0x12, 0x01, b'r']];
    let batch = PayloadBatch::from_iter(&messages).stamping_sequences();
    let appended = block_on(writer.appended(batch)).unwrap();
    assert_eq!(appended.first_sequence, 2);
    // 200 needs a two-byte varint
    for seq in 4..200 {
        block_on(writer.appended(one(payload(seq, 8)))).unwrap();
    }
    let late = PayloadBatch::from_iter([&messages[0]]).stamping_sequences();
    assert_eq!(block_on(writer.appended(late)).unwrap().first_sequence, 200);
    block_on(writer.closed()).unwrap();
    let (_, payloads) = read_journal(dir.path());
    assert_eq!(payloads[1], [0x08, 2, 0x12, 0x01, b'q']);
    assert_eq!(payloads[2], [0x08, 3, 0x12, 0x01, b'r']);
    assert_eq!(payloads[199], [0x08, 0xc8, 0x01, 0x12, 0x01, b'q']);
}

#[test]
fn invalid_batches_are_rejected_alone() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::Fsync)).unwrap();
    let empty = writer.appended(PayloadBatch::default());
    let good = writer.appended(one(payload(1, 8)));
    assert_eq!(
        block_on(empty).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(block_on(good).unwrap().first_sequence, 1);
    block_on(writer.closed()).unwrap();
}

#[test]
fn flush_fsyncs_what_durability_none_left_unsynced() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::None)).unwrap();
    for seq in 1..=10 {
        block_on(writer.appended(one(payload(seq, 8)))).unwrap();
    }
    assert_eq!(writer.stats().syncs, 0);
    block_on(writer.flushed()).unwrap();
    assert_eq!(writer.stats().syncs, 1);
    block_on(writer.flushed()).unwrap();
    assert_eq!(writer.stats().syncs, 1, "nothing new to sync");
    block_on(writer.closed()).unwrap();
}

#[test]
fn a_panicking_writer_thread_fails_every_request_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::Fsync)).unwrap();
    block_on(writer.appended(one(payload(1, 8)))).unwrap();
    writer
        .shared
        .panic_in_next_group
        .store(true, Ordering::SeqCst);
    let err = block_on(writer.appended(one(payload(2, 8)))).unwrap_err();
    assert_eq!(err.code, ErrorCode::Internal);
    assert!(
        err.message.contains("stopped while handling this request"),
        "the reply dropped by the unwinding thread answers: {}",
        err.message
    );
    let later = block_on(writer.appended(one(payload(2, 8)))).unwrap_err();
    assert_eq!(later.code, ErrorCode::Internal);
    assert!(
        later.message.contains("injected writer panic"),
        "{}",
        later.message
    );
    assert_eq!(
        block_on(writer.flushed()).unwrap_err().code,
        ErrorCode::Internal
    );
    assert!(!writer.alive());
    block_on(writer.closed()).unwrap();
    let reopened = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::Fsync));
    assert!(reopened.is_ok(), "the unwound thread released the lock");
}

#[test]
fn invalid_options_are_refused_before_locking() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = options(1 << 20, Durability::Fsync);
    bad.queue_capacity = 0;
    let err = Writer::open(dir.path(), fresh(), bad).err().unwrap();
    assert_eq!(err.code, ErrorCode::InvalidArgument);
    assert!(!dir.path().join(LOCK_FILE).exists());
}

/// Appends on the calling thread. The thread may be busy for a moment (told to start writeback
/// or to sync by an earlier inline append, or reading its deadline): the batch comes back, and
/// goes again once the thread is idle, so the append is still made on this thread.
fn appended_now(writer: &Writer, mut batch: PayloadBatch) -> AppendedBatch {
    for _ in 0..1000 {
        match writer.append_now(batch).unwrap() {
            AppendNow::Done(appended) => return appended,
            AppendNow::Queue(back) => {
                batch = back;
                until_idle(writer);
                std::thread::yield_now();
            }
        }
    }
    panic!("the batch was handed back 1000 times with the writer thread idle");
}

/// Waits (without a deadline the test could miss on a slow machine) until the writer thread
/// has finished what it was handed: `append_now` appends only then.
fn until_idle(writer: &Writer) {
    while {
        let queue = lock(&writer.shared.queue);
        queue.in_progress || !queue.requests.is_empty()
    } {
        std::thread::yield_now();
    }
}

#[test]
fn append_now_appends_on_the_calling_thread_in_order_with_queued_appends() {
    let dir = tempfile::tempdir().unwrap();
    // small segments: some appends fall on a rotation, which append_now leaves to the thread
    let writer = Writer::open(dir.path(), fresh(), options(4096, Durability::None)).unwrap();
    let payloads: Vec<Vec<u8>> = (1..=400).map(|seq| payload(seq, 100)).collect();
    let expected = chain_of(&payloads);
    let (mut now, mut queued) = (0, 0);
    let mut seq = 1u64;
    while seq <= 400 {
        // batches of 1..=3 entries
        let count = (seq % 3 + 1).min(401 - seq) as usize;
        let batch: PayloadBatch = payloads[seq as usize - 1..][..count].iter().collect();
        let result = match writer.append_now(batch).unwrap() {
            AppendNow::Done(result) => {
                now += 1;
                result
            }
            AppendNow::Queue(batch) => {
                queued += 1;
                block_on(writer.appended(batch)).unwrap()
            }
        };
        assert_eq!(result.first_sequence, seq);
        assert_eq!(result.chain_hashes.len(), 32 * count);
        for i in 0..count {
            assert_eq!(
                result.chain_hashes[32 * i..][..32],
                expected[seq as usize - 1 + i]
            );
        }
        assert_eq!(writer.sequence(), seq + count as u64 - 1);
        seq += count as u64;
        until_idle(&writer);
    }
    assert!(now > 0 && queued > 0, "{now} appended now, {queued} queued");
    block_on(writer.closed()).unwrap();
    let (segments, read) = read_journal(dir.path());
    assert!(segments.len() > 5);
    assert_eq!(read, payloads);
}

#[test]
fn append_now_hands_back_what_only_the_writer_thread_may_do() {
    // 'fsync': an append must wait for fdatasync, which never runs on the caller's thread
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::Fsync)).unwrap();
    block_on(writer.appended(one(payload(1, 8)))).unwrap();
    until_idle(&writer);
    assert!(matches!(
        writer.append_now(one(payload(2, 8))).unwrap(),
        AppendNow::Queue(_)
    ));
    block_on(writer.closed()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(1 << 20, Durability::None)).unwrap();
    // no live segment yet: creating one is the thread's work
    let Ok(AppendNow::Queue(first)) = writer.append_now(one(payload(1, 8))) else {
        panic!("a new journal's first append needs a segment the thread creates");
    };
    block_on(writer.appended(first)).unwrap();
    until_idle(&writer);
    // a request queued ahead (held behind the publish lock): call order wins
    let held = lock(&writer.shared.chain_hash);
    let ahead = writer.appended(one(payload(2, 8)));
    assert!(matches!(
        writer.append_now(one(payload(3, 8))).unwrap(),
        AppendNow::Queue(_)
    ));
    drop(held);
    assert_eq!(block_on(ahead).unwrap().first_sequence, 2);
    until_idle(&writer);
    // a large group: hashing and copying it is the thread's work
    let Ok(AppendNow::Queue(large)) = writer.append_now(one(payload(3, INLINE_MAX_BYTES + 1)))
    else {
        panic!("a group over INLINE_MAX_BYTES was appended on the calling thread");
    };
    drop(large);
    // an invalid batch: the thread answers it with its error
    let Ok(AppendNow::Queue(empty)) = writer.append_now(PayloadBatch::default()) else {
        panic!("an empty batch was appended");
    };
    assert_eq!(
        block_on(writer.appended(empty)).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    until_idle(&writer);
    assert_eq!(appended_now(&writer, one(payload(3, 8))).first_sequence, 3);
    block_on(writer.closed()).unwrap();
    // closed: everything goes to the queue, which answers `closed`
    let Ok(AppendNow::Queue(late)) = writer.append_now(one(payload(4, 8))) else {
        panic!("appended after close");
    };
    assert_eq!(
        block_on(writer.appended(late)).unwrap_err().code,
        ErrorCode::Closed
    );
    let (_, read) = read_journal(dir.path());
    assert_eq!(read, (1..=3).map(|seq| payload(seq, 8)).collect::<Vec<_>>());
}

#[test]
fn append_now_under_interval_gets_its_fsync_from_the_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut interval = options(1 << 20, Durability::Interval);
    interval.fsync_interval = Duration::from_millis(5);
    let writer = Writer::open(dir.path(), fresh(), interval).unwrap();
    block_on(writer.appended(one(payload(1, 8)))).unwrap();
    // the thread syncs the first append, then waits without a deadline
    while writer.stats().syncs == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    until_idle(&writer);
    let syncs = writer.stats().syncs;
    appended_now(&writer, one(payload(2, 8)));
    // fails by hanging (the test's timeout) if the thread never learns of the dirty segment
    while writer.stats().syncs == syncs {
        std::thread::sleep(Duration::from_millis(1));
    }
    block_on(writer.closed()).unwrap();
    let (_, read) = read_journal(dir.path());
    assert_eq!(read.len(), 2);
}

#[test]
fn appends_made_on_the_calling_thread_get_their_writeback_started_by_the_thread() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), fresh(), options(8 << 20, Durability::None)).unwrap();
    block_on(writer.appended(one(payload(1, 1000)))).unwrap();
    until_idle(&writer);
    let written_back = |writer: &Writer| {
        let state = lock(&writer.state);
        let live = state.as_ref().unwrap().live.as_ref().unwrap();
        (live.written_back, live.len)
    };
    let mut seq = 2;
    while written_back(&writer).1 < WRITEBACK_CHUNK + 4096 {
        appended_now(&writer, one(payload(seq, 1000)));
        seq += 1;
    }
    // fails by hanging (the test's timeout) if the thread is never told
    while written_back(&writer).0 < WRITEBACK_CHUNK {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(writer.stats().syncs, 0, "writeback is no sync");
    block_on(writer.closed()).unwrap();
    let (_, read) = read_journal(dir.path());
    assert_eq!(read.len() as u64, seq - 1);
}

fn spare_ready(writer: &Writer) -> bool {
    lock(&writer.state)
        .as_ref()
        .and_then(|state| state.spare.as_ref())
        .is_some_and(|spare| spare.is_ready())
}

#[test]
fn under_fsync_a_rotation_takes_the_spare_segment_prepared_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let entry = (ENTRY_HEADER_SIZE + 1000) as u64;
    let max = HEADER_LEN + 20 * entry;
    let writer = Writer::open(dir.path(), fresh(), options(max, Durability::Fsync)).unwrap();
    let spare = dir.path().join(spare::SPARE_FILE);
    for seq in 1..=10 {
        block_on(writer.appended(one(payload(seq, 1000)))).unwrap();
    }
    // half full: the spare is asked for, and written off the appends' path
    let deadline = Instant::now() + Duration::from_secs(30);
    while !spare_ready(&writer) {
        assert!(Instant::now() < deadline, "the spare gets ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    let bytes = fs::read(&spare).unwrap();
    assert_eq!(bytes.len() as u64, max);
    assert!(bytes.iter().all(|&b| b == 0));
    for seq in 11..=21 {
        block_on(writer.appended(one(payload(seq, 1000)))).unwrap();
    }
    // entry 21 rotated into the spare, now the live segment 21 with its header and one entry
    let live = dir.path().join(segment_file_name(21));
    assert_eq!(fs::metadata(&live).unwrap().len(), max);
    assert_eq!(entries_of_live(&live), (HEADER_LEN + entry, vec![21]));
    assert!(!spare.exists(), "the spare's own name is gone");
    block_on(writer.closed()).unwrap();
    assert!(!spare.exists(), "close leaves no spare behind");
    let (segments, payloads) = read_journal(dir.path());
    assert_eq!(segments.len(), 2);
    assert!(segments.iter().all(|segment| segment.header.is_sealed()));
    assert_eq!(
        payloads,
        (1..=21).map(|seq| payload(seq, 1000)).collect::<Vec<_>>()
    );
}

#[test]
fn a_spare_left_by_a_crash_is_replaced_when_a_writer_needs_one_and_none_is_made_without_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let spare = dir.path().join(spare::SPARE_FILE);
    fs::write(&spare, b"left by a crash").unwrap();
    // a writer that appends nothing (Journal.open's guard while recovery runs) touches no file
    let writer = Writer::open(dir.path(), fresh(), options(4096, Durability::Fsync)).unwrap();
    block_on(writer.closed()).unwrap();
    assert_eq!(fs::read(&spare).unwrap(), b"left by a crash");
    let writer = Writer::open(dir.path(), fresh(), options(4096, Durability::Fsync)).unwrap();
    for seq in 1..=100 {
        block_on(writer.appended(one(payload(seq, 100)))).unwrap();
    }
    block_on(writer.closed()).unwrap();
    assert!(!spare.exists(), "replaced, and removed at close");

    let dir = tempfile::tempdir().unwrap();
    let spare = dir.path().join(spare::SPARE_FILE);
    let writer = Writer::open(dir.path(), fresh(), options(4096, Durability::None)).unwrap();
    for seq in 1..=100 {
        block_on(writer.appended(one(payload(seq, 100)))).unwrap();
    }
    assert!(!spare.exists());
    assert!(lock(&writer.state).as_ref().unwrap().spare.is_none());
    block_on(writer.closed()).unwrap();
    assert_eq!(read_journal(dir.path()).1.len(), 100);
}

#[test]
fn a_spare_linked_over_an_existing_segment_name_is_refused_like_a_created_one() {
    let dir = tempfile::tempdir().unwrap();
    let entry = (ENTRY_HEADER_SIZE + 1000) as u64;
    let max = HEADER_LEN + 4 * entry;
    let writer = Writer::open(dir.path(), fresh(), options(max, Durability::Fsync)).unwrap();
    for seq in 1..=4 {
        block_on(writer.appended(one(payload(seq, 1000)))).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !spare_ready(&writer) {
        assert!(Instant::now() < deadline, "the spare gets ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    let squatter = dir.path().join(segment_file_name(5));
    fs::write(&squatter, b"not ours").unwrap();
    let err = block_on(writer.appended(one(payload(5, 1000)))).unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(fs::read(&squatter).unwrap(), b"not ours");
    fs::remove_file(&squatter).unwrap();
    assert_eq!(
        block_on(writer.appended(one(payload(5, 1000))))
            .unwrap()
            .first_sequence,
        5
    );
    block_on(writer.closed()).unwrap();
    assert_eq!(read_journal(dir.path()).1.len(), 5);
}
