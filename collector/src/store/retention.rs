//! Retention: whole traces are expired oldest first (by their first span's start), by age and by stored
//! size. Error traces may be kept longer than the others.

use std::collections::HashSet;

use super::chunk::{ChunkKey, KEY_LEN as CHUNK_KEY_LEN};
use super::keys::TraceSummary;
use super::scan::Oldest;
use super::{Store, StoreError};
use crate::model::TraceId;

/// Traces deleted per batch, so that one retention pass never holds the writer for long.
const CHUNK: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Traces older than this are deleted (0: never by age).
    pub max_age_us: u64,
    /// Traces with an error span are kept this long instead, when set.
    pub error_max_age_us: Option<u64>,
    /// When the stored bytes exceed this, the oldest traces go first (0: no size limit).
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub expired_by_age: usize,
    pub expired_by_size: usize,
}

impl Store {
    /// Runs one retention pass at `now_us`.
    pub fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        now_us: u64,
    ) -> Result<RetentionReport, StoreError> {
        let mut report = RetentionReport::default();
        if policy.max_age_us > 0 {
            let cutoff = now_us.saturating_sub(policy.max_age_us);
            let error_cutoff = policy
                .error_max_age_us
                .map(|a| now_us.saturating_sub(a))
                .unwrap_or(cutoff);
            loop {
                let batch = self.oldest(CHUNK, |item, s| {
                    if item.floor_us >= cutoff.max(error_cutoff) {
                        return Pick::Stop;
                    }
                    let limit = if s.error { error_cutoff } else { cutoff };
                    if item.start_us < limit {
                        Pick::Take
                    } else {
                        Pick::Skip
                    }
                })?;
                if batch.is_empty() {
                    break;
                }
                report.expired_by_age += batch.len();
                self.delete_traces(&batch)?;
            }
        }
        if policy.max_bytes > 0 {
            // Non-error traces go first; error traces only when nothing else is left to free.
            for errors_too in [false, true] {
                loop {
                    let excess = self.stored_bytes()?.saturating_sub(policy.max_bytes);
                    if excess == 0 {
                        break;
                    }
                    // Just enough of the oldest traces to get under the limit.
                    let mut freed = 0u64;
                    let batch = self.oldest(CHUNK, |_, s| {
                        if freed >= excess {
                            Pick::Stop
                        } else if errors_too || !s.error {
                            freed += s.bytes;
                            Pick::Take
                        } else {
                            Pick::Skip
                        }
                    })?;
                    if batch.is_empty() {
                        break;
                    }
                    report.expired_by_size += batch.len();
                    self.delete_traces(&batch)?;
                }
            }
        }
        self.drop_dead_runs()?;
        Ok(report)
    }

    /// Deletes the trace index's runs that name only chunks older than every chunk left.
    fn drop_dead_runs(&self) -> Result<(), StoreError> {
        let _writer = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let oldest = self
            .chunks
            .first_key_value()?
            .map(|(key, _)| ChunkKey::try_from(&*key).unwrap_or([0; CHUNK_KEY_LEN]));
        let mut batch = self.db.batch(false);
        let dropped = self.index.drop_runs_before(&mut batch, oldest.as_ref())?;
        if !dropped.is_empty() {
            batch.commit()?;
            self.index.forget(&dropped)?;
        }
        Ok(())
    }

    /// Up to `n` traces, oldest first (within `ENTRY_SPREAD_US`: see `Store::oldest_first`), that
    /// `pick` takes. A trace is judged by the first of its items met, which starts at most
    /// `ENTRY_SPREAD_US` after its oldest.
    fn oldest(
        &self,
        n: usize,
        mut pick: impl FnMut(&Oldest, &TraceSummary) -> Pick,
    ) -> Result<Vec<TraceId>, StoreError> {
        let at = self.keyspace.instant();
        let reader = self.reader(at)?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for item in self.oldest_first(at, 0, u64::MAX)? {
            if out.len() >= n {
                break;
            }
            let item = item?;
            let trace = item.trace;
            if !seen.insert(trace) {
                continue;
            }
            // An item of a trace no part is left of (a part of it was stored twice, the trace then
            // deleted) goes with its entry's chunk.
            let Some(summary) = reader.summary(&trace)? else {
                continue;
            };
            match pick(&item, &summary) {
                Pick::Take => out.push(trace),
                Pick::Skip => {}
                Pick::Stop => break,
            }
        }
        Ok(out)
    }
}

enum Pick {
    Take,
    Skip,
    Stop,
}
