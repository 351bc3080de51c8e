//! The embedded store: opened only when it is on (`--store=false` opens nothing), and its retention task.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{now_us, Config, InitError};
use crate::duration::as_micros;
use crate::store::{RetentionPolicy, Store, StoreOptions};

/// Opens `<data-dir>/traces/` unless the store is off.
pub async fn open(config: &Config) -> Result<Option<Arc<Store>>, InitError> {
    if !config.store {
        tracing::info!("store off: spans are only forwarded (gateway mode)");
        return Ok(None);
    }
    let data_dir = config.data_dir.clone();
    let options =
        StoreOptions::new(usize::try_from(config.store_cache_bytes).unwrap_or(usize::MAX));
    let store = tokio::task::spawn_blocking(move || Store::open_with(&data_dir, &options))
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
