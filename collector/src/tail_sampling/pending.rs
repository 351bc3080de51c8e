//! The durable holding area for spans waiting for a tail-sampling decision: the `tail_pending`
//! partition of the one keyspace, keyed like the store's spans (trace, span, discriminator) so that a
//! retried export is idempotent, each value one span with its resource and scope as an encoded
//! `TracesData`. The writer adds held spans in the same fsynced batch as everything else in its group
//! commit, and removes decided spans in the batch that stores the sampled ones.

use std::sync::Arc;

use bytes::Bytes;
use fjall::{Batch, PartitionCreateOptions, PartitionHandle};

use crate::model::{SpanRef, TraceId};
use crate::store::{fjall_retryable, Database, StoreError};

const PARTITION: &str = "tail_pending";

/// trace(16) span(8) discriminator(4).
pub type PendingKey = [u8; 28];

/// A span held for a decision: its key and its bytes (a one-span `TracesData`).
pub type HeldSpan = (PendingKey, Bytes);

/// Why the pending set could not be read or opened.
#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    #[error("tail sampling pending set: {0}")]
    Storage(#[from] fjall::Error),
    #[error("tail sampling pending set: {0}")]
    Open(#[from] StoreError),
}

impl PendingError {
    pub fn is_retryable(&self) -> bool {
        match self {
            PendingError::Storage(e) => fjall_retryable(e),
            PendingError::Open(e) => e.is_retryable(),
        }
    }
}

pub fn key(span: &SpanRef<'_>) -> PendingKey {
    let mut out = [0u8; 28];
    for (slot, byte) in out.iter_mut().zip(
        span.trace_id()
            .into_iter()
            .chain(span.span_id())
            .chain(span.discriminator()),
    ) {
        *slot = byte;
    }
    out
}

pub struct PendingSet {
    partition: PartitionHandle,
}

impl PendingSet {
    pub fn open(db: &Arc<Database>) -> Result<Self, PendingError> {
        Ok(Self {
            partition: db.partition(PARTITION, PartitionCreateOptions::default())?,
        })
    }

    /// Adds spans to hold and removes decided ones, in the writer's batch.
    pub fn add(&self, batch: &mut Batch, hold: &[HeldSpan], release: &[PendingKey]) {
        for (key, value) in hold {
            batch.insert(&self.partition, *key, value.as_ref());
        }
        for key in release {
            batch.remove(&self.partition, *key);
        }
    }

    /// Everything still waiting (after a restart), grouped by trace in key order.
    pub fn load(&self) -> Result<Vec<(TraceId, Vec<HeldSpan>)>, PendingError> {
        let mut out: Vec<(TraceId, Vec<HeldSpan>)> = Vec::new();
        for item in self.partition.iter() {
            let (k, v) = item?;
            let Ok(key) = PendingKey::try_from(&*k) else {
                continue;
            };
            let Some(trace) = key.get(..16).and_then(|t| TraceId::try_from(t).ok()) else {
                continue;
            };
            let held = (key, Bytes::copy_from_slice(&v));
            match out.last_mut() {
                Some((t, spans)) if *t == trace => spans.push(held),
                _ => out.push((trace, vec![held])),
            }
        }
        Ok(out)
    }
}
