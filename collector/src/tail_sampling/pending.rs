//! The durable holding area for spans waiting for a tail-sampling decision: `<data-dir>/tail-pending.redb`,
//! one table keyed like the store's spans (trace, span, discriminator), so a retried export is idempotent.
//! Every write commits with fsync before the receiver acknowledges.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};

use crate::model::{SpanRecord, TraceId};
use crate::store::StoreError;

const PENDING: TableDefinition<&[u8], &[u8]> = TableDefinition::new("pending");

pub struct PendingStore {
    db: Database,
}

fn key(r: &SpanRecord) -> Vec<u8> {
    [
        r.trace_id.as_slice(),
        r.span_id.as_slice(),
        r.discriminator().as_slice(),
    ]
    .concat()
}

impl PendingStore {
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(StoreError::Io)?;
        let db = Database::create(data_dir.join("tail-pending.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(PENDING)?;
        txn.commit()?;
        Ok(Self { db })
    }

    /// Durably adds spans (fsync before returning).
    pub fn put(&self, records: &[SpanRecord]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(PENDING)?;
            for r in records {
                table.insert(key(r).as_slice(), r.encode().as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Removes decided spans.
    pub fn remove(&self, records: &[SpanRecord]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(PENDING)?;
            for r in records {
                table.remove(key(r).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Everything still waiting (after a restart), grouped by trace in key order.
    pub fn load(&self) -> Result<Vec<(TraceId, Vec<SpanRecord>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PENDING)?;
        let mut out: Vec<(TraceId, Vec<SpanRecord>)> = Vec::new();
        for item in table.iter()? {
            let (_, v) = item?;
            let Some(rec) = SpanRecord::decode(v.value()) else {
                continue;
            };
            match out.last_mut() {
                Some((trace, spans)) if *trace == rec.trace_id => spans.push(rec),
                _ => out.push((rec.trace_id, vec![rec])),
            }
        }
        Ok(out)
    }
}
