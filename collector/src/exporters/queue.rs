//! The persistent export queue: `<data-dir>/export-queue.redb`, a table `queue:<exporter>` per exporter,
//! key = sequence number (u64), value = an encoded `ExportTraceServiceRequest`. `append` adds one entry to
//! every exporter's table in one fsync'd transaction; an exporter deletes entries only after the upstream
//! accepted them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::Notify;

use crate::model::SpanRecord;
use crate::store::StoreError;

/// Groups records by (resource, scope) into one request.
pub fn to_request(records: &[SpanRecord]) -> ExportTraceServiceRequest {
    let mut by_resource: Vec<ResourceSpans> = Vec::new();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    for r in records {
        let key = r.resource.encode_to_vec();
        let slot = *index.entry(key).or_insert_with(|| {
            by_resource.push(ResourceSpans {
                resource: Some(r.resource.clone()),
                scope_spans: Vec::new(),
                schema_url: String::new(),
            });
            by_resource.len() - 1
        });
        let Some(rs) = by_resource.get_mut(slot) else {
            continue;
        };
        match rs
            .scope_spans
            .iter_mut()
            .find(|ss| ss.scope.as_ref() == Some(&r.scope))
        {
            Some(ss) => ss.spans.push(r.span.clone()),
            None => rs.scope_spans.push(ScopeSpans {
                scope: Some(r.scope.clone()),
                spans: vec![r.span.clone()],
                schema_url: String::new(),
            }),
        }
    }
    ExportTraceServiceRequest {
        resource_spans: by_resource,
    }
}

pub fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| ss.spans.len())
        .sum()
}

pub struct ExportQueue {
    db: Database,
    names: Vec<String>,
    /// Spans queued per exporter (same order as `names`).
    queued: Vec<AtomicU64>,
    /// Woken after every append.
    pub appended: Arc<Notify>,
}

fn table(name: &str) -> String {
    format!("queue:{name}")
}

/// exporter name -> spans queued, kept in the same transactions as the queue tables.
const COUNTS: TableDefinition<&str, u64> = TableDefinition::new("queued_spans");

impl ExportQueue {
    pub fn open(data_dir: &Path, names: &[String]) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(StoreError::Io)?;
        let db = Database::create(data_dir.join("export-queue.redb"))?;
        let txn = db.begin_write()?;
        let mut queued = Vec::with_capacity(names.len());
        {
            let counts = txn.open_table(COUNTS)?;
            for name in names {
                txn.open_table(TableDefinition::<u64, &[u8]>::new(&table(name)))?;
                let spans = counts.get(name.as_str())?.map(|v| v.value()).unwrap_or(0);
                queued.push(AtomicU64::new(spans));
            }
        }
        txn.commit()?;
        Ok(Self {
            db,
            names: names.to_vec(),
            queued,
            appended: Arc::new(Notify::new()),
        })
    }

    /// Spans queued for `name`.
    pub fn queued(&self, name: &str) -> u64 {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.queued.get(i))
            .map(|q| q.load(Ordering::SeqCst))
            .unwrap_or(0)
    }

    /// Durably appends `records` for every exporter (fsync before returning).
    pub fn append(&self, records: &[SpanRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let bytes = to_request(records).encode_to_vec();
        let txn = self.db.begin_write()?;
        {
            let mut counts = txn.open_table(COUNTS)?;
            for name in &self.names {
                let mut t = txn.open_table(TableDefinition::<u64, &[u8]>::new(&table(name)))?;
                let next = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0);
                t.insert(next, bytes.as_slice())?;
                let spans = counts.get(name.as_str())?.map(|v| v.value()).unwrap_or(0);
                counts.insert(name.as_str(), spans + records.len() as u64)?;
            }
        }
        txn.commit()?;
        for q in &self.queued {
            q.fetch_add(records.len() as u64, Ordering::SeqCst);
        }
        self.appended.notify_waiters();
        Ok(())
    }

    /// The oldest entries for `name`, up to about `max_spans` spans (at least one entry).
    pub fn peek(
        &self,
        name: &str,
        max_spans: usize,
    ) -> Result<Vec<(u64, ExportTraceServiceRequest)>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(TableDefinition::<u64, &[u8]>::new(&table(name)))?;
        let mut out = Vec::new();
        let mut spans = 0usize;
        for item in t.iter()? {
            let (k, v) = item?;
            let Ok(request) = ExportTraceServiceRequest::decode(v.value()) else {
                tracing::error!(
                    exporter = name,
                    seq = k.value(),
                    "undecodable export queue entry skipped"
                );
                continue;
            };
            let n = span_count(&request);
            if !out.is_empty() && spans + n > max_spans {
                break;
            }
            spans += n;
            out.push((k.value(), request));
        }
        Ok(out)
    }

    /// Entries queued for `name`.
    pub fn entries(&self, name: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(TableDefinition::<u64, &[u8]>::new(&table(name)))?;
        Ok(t.len()?)
    }

    /// Deletes delivered (or permanently rejected) entries.
    pub fn remove(&self, name: &str, seqs: &[u64], spans: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(TableDefinition::<u64, &[u8]>::new(&table(name)))?;
            for seq in seqs {
                t.remove(*seq)?;
            }
            let mut counts = txn.open_table(COUNTS)?;
            let left = if t.is_empty()? {
                0
            } else {
                let queued = counts.get(name)?.map(|v| v.value()).unwrap_or(0);
                queued.saturating_sub(spans)
            };
            counts.insert(name, left)?;
        }
        txn.commit()?;
        if let Some(q) = self
            .names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.queued.get(i))
        {
            let _ = q.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_sub(spans))
            });
            if self.entries(name)? == 0 {
                q.store(0, Ordering::SeqCst);
            }
        }
        Ok(())
    }
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
    use crate::model::string_attribute;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn rec(service: &str, id: u8) -> SpanRecord {
        let resource = Resource {
            attributes: vec![string_attribute("service.name", service)],
            ..Default::default()
        };
        let span = Span {
            trace_id: vec![4; 16],
            span_id: vec![id; 8],
            ..Default::default()
        };
        SpanRecord::new(resource, Default::default(), span).unwrap()
    }

    #[test]
    fn groups_by_resource_and_survives_reopen() {
        let req = to_request(&[rec("a", 1), rec("b", 2), rec("a", 3)]);
        assert_eq!(req.resource_spans.len(), 2);
        assert_eq!(span_count(&req), 3);

        let dir = tempfile::tempdir().unwrap();
        let names = vec!["up1".to_string(), "up2".to_string()];
        {
            let q = ExportQueue::open(dir.path(), &names).unwrap();
            q.append(&[rec("a", 1), rec("a", 2)]).unwrap();
            q.append(&[rec("a", 3)]).unwrap();
            let first = q.peek("up1", 2).unwrap();
            assert_eq!(first.len(), 1, "batch limited to about max spans");
            q.remove("up1", &[first[0].0], 2).unwrap();
            assert_eq!(q.queued("up1"), 1);
            assert_eq!(q.queued("up2"), 3);
        }
        let q = ExportQueue::open(dir.path(), &names).unwrap();
        assert_eq!(q.queued("up1"), 1, "counted again after reopen");
        assert_eq!(q.entries("up2").unwrap(), 2);
        assert_eq!(q.peek("up2", 100).unwrap().len(), 2);
    }
}
