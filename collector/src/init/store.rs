//! The keyspace (opened when anything is kept durably), the embedded store in it (only when it is on:
//! `--store=false` opens no store), and the store's retention task.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{now_us, Config, InitError};
use crate::duration::as_micros;
use crate::store::{Database, RetentionPolicy, Store, StoreOptions};

/// Opens the keyspace `<data-dir>/db/` when something is kept durably: the store, an exporter's queue
/// or tail sampling's pending set. A gateway with none of them opens nothing.
pub async fn open_database(config: &Config) -> Result<Option<Arc<Database>>, InitError> {
    let durable = config.store
        || !config.sections.exporters.is_empty()
        || config.sections.tail_sampling.is_some();
    if !durable {
        return Ok(None);
    }
    let data_dir = config.data_dir.clone();
    let mut options =
        StoreOptions::new(usize::try_from(config.store_cache_bytes).unwrap_or(usize::MAX));
    options.write_buffer_bytes = config.store_write_buffer_bytes;
    let db = tokio::task::spawn_blocking(move || Database::open(&data_dir, &options))
        .await
        .map_err(|e| InitError::Task(e.to_string()))??;
    Ok(Some(Arc::new(db)))
}

/// Opens the store's partitions unless the store is off.
pub async fn open(
    config: &Config,
    db: Option<&Arc<Database>>,
) -> Result<Option<Arc<Store>>, InitError> {
    let (true, Some(db)) = (config.store, db) else {
        tracing::info!("store off: spans are only forwarded (gateway mode)");
        return Ok(None);
    };
    let db = db.clone();
    let store = tokio::task::spawn_blocking(move || Store::open_in(db))
        .await
        .map_err(|e| InitError::Task(e.to_string()))??;
    tracing::info!(data_dir = %config.data_dir.display(), "store open");
    Ok(Some(Arc::new(store)))
}

/// Applies the retention policy every `--retention-interval` (at least a second) until `stop`.
pub fn spawn_retention(
    tasks: &mut JoinSet<Result<(), String>>,
    store: Arc<Store>,
    config: &Config,
    stop: CancellationToken,
) {
    let policy = RetentionPolicy {
        max_age_us: as_micros(config.retention_max_age),
        error_max_age_us: config.retention_error_max_age.map(as_micros),
        max_bytes: config.retention_max_bytes,
    };
    let interval = config
        .retention_interval
        .max(std::time::Duration::from_secs(1));
    tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(interval) => {}
            }
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.apply_retention(&policy, now_us())).await {
                Ok(Ok(report)) if report.expired_by_age + report.expired_by_size > 0 => {
                    tracing::info!(
                        by_age = report.expired_by_age,
                        by_size = report.expired_by_size,
                        "retention expired traces"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                Err(e) => tracing::error!(error = %e, "retention task failed"),
            }
        }
    });
}
