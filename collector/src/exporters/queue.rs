//! The persistent export queue, two partitions of the one keyspace:
//!
//! - `export_queue`: `seq(8)` -> `spans before(8) spans(4)` + an encoded `TracesData`. One entry per group
//!   commit, written in the writer's batch next to the store's (so one fsync covers both), and shared by
//!   every exporter: the spans are kept once however many exporters there are.
//! - `export_cursors`: exporter name -> `next seq(8) spans before it(8)`: where each exporter is. An
//!   exporter moves its cursor only after the upstream accepted (or permanently refused) what it sent, so
//!   delivery is at least once; an entry is deleted once every exporter's cursor has passed it.
//!
//! Spans queued for an exporter = spans ever appended - spans before its cursor, so counting never needs
//! to read the queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fjall::{Batch, PartitionCreateOptions, PartitionHandle};
use tokio::sync::Notify;

use crate::store::{fjall_retryable, Database, StoreError};

const ENTRIES: &str = "export_queue";
const CURSORS: &str = "export_cursors";
/// `spans before(8) spans(4)` in front of an entry's spans.
const HEADER: usize = 12;

/// Why the queue could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("export queue: {0}")]
    Storage(#[from] fjall::Error),
    #[error("export queue: {0}")]
    Open(#[from] StoreError),
    #[error("export queue: undecodable entry {0}")]
    Corrupt(u64),
}

impl QueueError {
    pub fn is_retryable(&self) -> bool {
        match self {
            QueueError::Storage(e) => fjall_retryable(e),
            QueueError::Open(e) => e.is_retryable(),
            QueueError::Corrupt(_) => false,
        }
    }
}

/// Queued spans waiting for one exporter, oldest first.
pub struct Pending {
    /// The cursor after these entries.
    next: Position,
    pub spans: usize,
    /// The entries' spans, concatenated: one `TracesData`.
    pub payload: Bytes,
}

/// A place in the queue: the next entry and how many spans came before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Position {
    seq: u64,
    spans_before: u64,
}

impl Position {
    fn encode(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (slot, byte) in out.iter_mut().zip(
            self.seq
                .to_be_bytes()
                .into_iter()
                .chain(self.spans_before.to_be_bytes()),
        ) {
            *slot = byte;
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            seq: u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?),
            spans_before: u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?),
        })
    }
}

struct Exporter {
    name: String,
    /// The cursor's `spans_before` (read without the lock by `queued`).
    delivered: AtomicU64,
    cursor: Mutex<Position>,
}

pub struct ExportQueue {
    db: Arc<Database>,
    entries: PartitionHandle,
    cursors: PartitionHandle,
    exporters: Vec<Exporter>,
    /// The next entry to append. Only the writer appends.
    head: Mutex<Position>,
    /// `head.spans_before`, readable without the lock.
    appended_spans: AtomicU64,
    /// The oldest entry not yet deleted.
    floor: Mutex<u64>,
    /// Woken after every append.
    pub appended: Arc<Notify>,
}

/// An entry added to a batch that is not committed yet; `committed` publishes it.
pub struct Appended<'a> {
    queue: &'a ExportQueue,
    head: Position,
}

impl Appended<'_> {
    pub fn committed(self) {
        if let Ok(mut head) = self.queue.head.lock() {
            *head = self.head;
        }
        self.queue
            .appended_spans
            .store(self.head.spans_before, Ordering::SeqCst);
        self.queue.appended.notify_waiters();
    }
}

impl ExportQueue {
    /// Opens the queue for the configured exporters. A new exporter starts with what is appended from now
    /// on; an exporter no longer configured loses its cursor (its spans are dropped, and logged).
    pub fn open(db: Arc<Database>, names: &[String]) -> Result<Self, QueueError> {
        let entries = db.partition(ENTRIES, PartitionCreateOptions::default())?;
        let cursors = db.partition(CURSORS, PartitionCreateOptions::default())?;
        let mut head = Position::default();
        if let Some((k, v)) = entries.last_key_value()? {
            let seq = u64::from_be_bytes((*k).try_into().map_err(|_| QueueError::Corrupt(0))?);
            let (before, spans) = header(&v).ok_or(QueueError::Corrupt(seq))?;
            head = Position {
                seq: seq + 1,
                spans_before: before + u64::from(spans),
            };
        }
        let mut known = Vec::new();
        for item in cursors.iter() {
            let (k, v) = item?;
            let position = Position::decode(&v).ok_or(QueueError::Corrupt(0))?;
            // With the queue drained and compacted away, the cursors remember where it was.
            if position.seq > head.seq {
                head = position;
            }
            known.push((String::from_utf8_lossy(&k).into_owned(), position));
        }
        let mut batch = db.batch(true);
        let mut exporters = Vec::new();
        for name in names {
            let position = match known.iter().find(|(n, _)| n == name) {
                Some((_, p)) => *p,
                None => {
                    batch.insert(&cursors, name.as_str(), head.encode());
                    head
                }
            };
            exporters.push(Exporter {
                name: name.clone(),
                delivered: AtomicU64::new(position.spans_before),
                cursor: Mutex::new(position),
            });
        }
        for (name, position) in known.iter().filter(|(n, _)| !names.contains(n)) {
            tracing::warn!(
                exporter = %name,
                spans = head.spans_before.saturating_sub(position.spans_before),
                "exporter no longer configured: the spans queued for it are dropped"
            );
            batch.remove(&cursors, name.as_str());
        }
        if !batch.is_empty() {
            batch.commit()?;
        }
        let floor = match entries.first_key_value()? {
            Some((k, _)) => {
                u64::from_be_bytes((*k).try_into().map_err(|_| QueueError::Corrupt(0))?)
            }
            None => head.seq,
        };
        let queue = Self {
            db,
            entries,
            cursors,
            exporters,
            appended_spans: AtomicU64::new(head.spans_before),
            head: Mutex::new(head),
            floor: Mutex::new(floor),
            appended: Arc::new(Notify::new()),
        };
        queue.collect()?;
        Ok(queue)
    }

    fn exporter(&self, name: &str) -> Option<&Exporter> {
        self.exporters.iter().find(|e| e.name == name)
    }

    /// Spans queued for `name`.
    pub fn queued(&self, name: &str) -> u64 {
        self.exporter(name).map_or(0, |e| {
            self.appended_spans
                .load(Ordering::SeqCst)
                .saturating_sub(e.delivered.load(Ordering::SeqCst))
        })
    }

    /// Whether some exporter has `max` spans queued or more (`limits`: name, max).
    pub fn full(&self, limits: &[(String, u64)]) -> bool {
        limits.iter().any(|(name, max)| self.queued(name) >= *max)
    }

    /// Adds `spans` spans (an encoded `TracesData` in `pieces`, concatenated) to `batch` as the next
    /// entry. Only the writer appends.
    pub fn append(&self, batch: &mut Batch, pieces: &[Bytes], spans: usize) -> Appended<'_> {
        let head = self.head.lock().map(|h| *h).unwrap_or_default();
        let spans = u32::try_from(spans).unwrap_or(u32::MAX);
        let len = HEADER + pieces.iter().map(Bytes::len).sum::<usize>();
        let mut value = Vec::with_capacity(len);
        value.extend_from_slice(&head.spans_before.to_be_bytes());
        value.extend_from_slice(&spans.to_be_bytes());
        for piece in pieces {
            value.extend_from_slice(piece);
        }
        batch.insert(&self.entries, head.seq.to_be_bytes(), value);
        Appended {
            queue: self,
            head: Position {
                seq: head.seq + 1,
                spans_before: head.spans_before + u64::from(spans),
            },
        }
    }

    /// The oldest spans queued for `name`, up to about `max_spans` (at least one entry), as one payload.
    pub fn peek(&self, name: &str, max_spans: usize) -> Result<Option<Pending>, QueueError> {
        let Some(exporter) = self.exporter(name) else {
            return Ok(None);
        };
        let from = exporter.cursor.lock().map(|c| *c).unwrap_or_default();
        let mut payload = Vec::new();
        let mut next = from;
        let mut spans = 0usize;
        for item in self.entries.range(from.seq.to_be_bytes()..) {
            let (k, v) = item?;
            let seq = u64::from_be_bytes((*k).try_into().map_err(|_| QueueError::Corrupt(0))?);
            let Some((before, n)) = header(&v) else {
                tracing::error!(
                    exporter = name,
                    seq,
                    "undecodable export queue entry skipped"
                );
                continue;
            };
            let n = n as usize;
            if spans > 0 && spans + n > max_spans {
                break;
            }
            spans += n;
            payload.extend_from_slice(v.get(HEADER..).unwrap_or_default());
            next = Position {
                seq: seq + 1,
                spans_before: before + n as u64,
            };
        }
        Ok((next != from).then(|| Pending {
            next,
            spans,
            payload: payload.into(),
        }))
    }

    /// Moves `name`'s cursor past `pending` (delivered, or refused for good) and deletes the entries
    /// every exporter has passed. Not fsynced: lost in a crash, the spans are sent again.
    pub fn done(&self, name: &str, pending: &Pending) -> Result<(), QueueError> {
        let Some(exporter) = self.exporter(name) else {
            return Ok(());
        };
        let mut batch = self.db.batch(false);
        batch.insert(&self.cursors, name, pending.next.encode());
        batch.commit()?;
        if let Ok(mut cursor) = exporter.cursor.lock() {
            *cursor = pending.next;
        }
        exporter
            .delivered
            .store(pending.next.spans_before, Ordering::SeqCst);
        self.collect()
    }

    /// Deletes the entries below every exporter's cursor.
    fn collect(&self) -> Result<(), QueueError> {
        let Some(lowest) = self
            .exporters
            .iter()
            .filter_map(|e| e.cursor.lock().ok().map(|c| c.seq))
            .min()
        else {
            return Ok(());
        };
        let Ok(mut floor) = self.floor.lock() else {
            return Ok(());
        };
        if lowest <= *floor {
            return Ok(());
        }
        let mut batch = self.db.batch(false);
        for seq in *floor..lowest {
            batch.remove(&self.entries, seq.to_be_bytes());
        }
        batch.commit()?;
        *floor = lowest;
        Ok(())
    }
}

fn header(value: &[u8]) -> Option<(u64, u32)> {
    Some((
        u64::from_be_bytes(value.get(..8)?.try_into().ok()?),
        u32::from_be_bytes(value.get(8..12)?.try_into().ok()?),
    ))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use crate::model::{string_attribute, SpanBatch, SpanRecord};
    use crate::store::StoreOptions;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{Span, TracesData};
    use prost::Message;

    fn payload(service: &str, ids: &[u8]) -> Bytes {
        let records: Vec<SpanRecord> = ids
            .iter()
            .map(|id| {
                let resource = Resource {
                    attributes: vec![string_attribute("service.name", service)],
                    ..Default::default()
                };
                let span = Span {
                    trace_id: vec![4; 16],
                    span_id: vec![*id; 8],
                    ..Default::default()
                };
                SpanRecord::new(resource, Default::default(), span).unwrap()
            })
            .collect();
        SpanBatch::from_records(&records).encode_all()
    }

    fn append(db: &Database, q: &ExportQueue, ids: &[u8]) {
        let mut batch = db.batch(true);
        let appended = q.append(&mut batch, &[payload("a", ids)], ids.len());
        batch.commit().unwrap();
        appended.committed();
    }

    fn span_ids(p: &Pending) -> Vec<u8> {
        TracesData::decode(p.payload.as_ref())
            .unwrap()
            .resource_spans
            .iter()
            .flat_map(|rs| rs.scope_spans.iter())
            .flat_map(|ss| ss.spans.iter())
            .map(|s| s.span_id[0])
            .collect()
    }

    #[test]
    fn exporters_drain_at_their_own_pace_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["up1".to_string(), "up2".to_string()];
        let open = || {
            let db = Arc::new(Database::open(dir.path(), &StoreOptions::new(1 << 20)).unwrap());
            let q = ExportQueue::open(db.clone(), &names).unwrap();
            (db, q)
        };
        {
            let (db, q) = open();
            append(&db, &q, &[1, 2]);
            append(&db, &q, &[3]);
            let first = q.peek("up1", 2).unwrap().unwrap();
            assert_eq!(
                span_ids(&first),
                vec![1, 2],
                "batch limited to about max spans"
            );
            q.done("up1", &first).unwrap();
            assert_eq!(q.queued("up1"), 1);
            assert_eq!(q.queued("up2"), 3);
        }
        let (db, q) = open();
        assert_eq!(q.queued("up1"), 1, "counted again after reopen");
        assert_eq!(q.queued("up2"), 3);
        let all = q.peek("up2", 100).unwrap().unwrap();
        assert_eq!(span_ids(&all), vec![1, 2, 3], "one payload of both entries");
        q.done("up2", &all).unwrap();
        let rest = q.peek("up1", 100).unwrap().unwrap();
        assert_eq!(span_ids(&rest), vec![3]);
        q.done("up1", &rest).unwrap();
        assert!(q.peek("up1", 100).unwrap().is_none(), "drained");
        assert_eq!(
            q.entries.len().unwrap(),
            0,
            "entries every exporter passed are deleted"
        );
        append(&db, &q, &[4]);
        drop((db, q));
        let (_db, q) = open();
        assert_eq!(
            (q.queued("up1"), q.queued("up2")),
            (1, 1),
            "new entries after a drained queue"
        );
    }

    #[test]
    fn a_new_exporter_starts_now_and_a_removed_one_stops_holding_entries() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::open(dir.path(), &StoreOptions::new(1 << 20)).unwrap());
        let q = ExportQueue::open(db.clone(), &["old".to_string()]).unwrap();
        append(&db, &q, &[1, 2]);
        drop(q);
        let q = ExportQueue::open(db.clone(), &["new".to_string()]).unwrap();
        assert_eq!(
            q.queued("new"),
            0,
            "a new exporter does not get the backlog"
        );
        assert_eq!(q.entries.len().unwrap(), 0, "nobody needs the old entry");
        append(&db, &q, &[3]);
        assert_eq!(span_ids(&q.peek("new", 10).unwrap().unwrap()), vec![3]);
    }
}
