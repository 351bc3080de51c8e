//! The store's partitions of the one fjall keyspace (format 8; the export queue and the pending set
//! name their own). All keys are byte strings built in `keys`;
//! integers inside keys are big-endian so that byte order is numeric order.

/// The format this build reads and writes. Formats 1 and 2 (a redb file, `traces.redb`) and 3 (fjall for
/// traces, redb files for the export queue and the pending set) are refused with a clear error by
/// `Database::open`. Format 4 keeps everything in one keyspace; its trace parts are keyed by an xxh3
/// hash of their spans' bytes as received. Format 5 drops format 4's `trace_age` partition (`first
/// start µs(8) trace(16)` -> (), one more insert per part): retention and the dependencies window walk
/// the `search` entries of every service merged by start instead (`Store::oldest_first`). Format 6 keeps
/// a part's spans in the chunk of the submission that brought them (`CHUNKS`), compressed once when
/// received, instead of in the part's value, which LZ4 compressed again at every flush and compaction.
/// Format 7 makes one search entry per submission and service (`entry`) instead of one per trace part
/// and service. Format 8 keeps the submission's request whole in its chunk, each part the layout of its
/// spans in it (`model::layout`), instead of re-encoding every part's spans into the chunk; a part's key
/// hashes what its layout refers to. Format 9 keeps the parts in their chunk's table instead of a
/// `parts` partition (`trace(16) hash(8)` -> summary and location, a key per trace and request), and
/// finds a trace's chunks through `trace_index`'s runs.
pub const FORMAT_VERSION: u64 = 9;

/// `arrival µs(8) counter(8)` -> a submission's trace parts and spans: its part table (per part its
/// reference `trace(16) hash(8)`, summary and spans' layout), its search entries' keys, then one LZ4
/// block of the request's bytes as they arrived (`chunk`); stored uncompressed by the LSM.
pub const CHUNKS: &str = "chunks";
/// The trace index's run pages: `run(8) last hash(8) page(4)` -> sorted `trace(16) chunk(16)`
/// entries (`trace_index`).
pub const INDEX_PAGES: &str = "index_pages";
/// `run(8)` -> the run's last chunk, entry count and Bloom filter.
pub const INDEX_RUNS: &str = "index_runs";
/// `commit(8)` -> the chunk keys of a group commit not sealed into a run yet.
pub const INDEX_PENDING: &str = "index_pending";
/// `lp(service) start µs(8) chunk(16)` -> the items of one submission's trace parts for that service:
/// per part its trace, start, shortest and longest duration and the hashes of its operations and tags,
/// through a dictionary of the entry's hashes (`entry`). Per service in time order; merged over
/// services, the store in time order (retention, dependencies).
pub const SEARCH: &str = "search";
/// service -> ().
pub const SERVICES: &str = "services";
/// `lp(service) kind(1) operation` -> ().
pub const OPERATIONS: &str = "operations";
/// Counters and settings, written in the same batches as the data.
pub const META: &str = "meta";
/// u64 big-endian: part bytes plus search entries plus chunks.
pub const META_STORED_BYTES: &str = "stored_bytes";
/// u64 big-endian.
pub const META_FORMAT: &str = "format_version";

/// A big-endian u64 value.
pub fn u64_value(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}
