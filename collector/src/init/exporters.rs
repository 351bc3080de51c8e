//! Exporters: their configuration checked before anything opens, their persistent queue, their drain loops.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Config, InitError};
use crate::exporters::{run_exporter, Client, ExportQueue, ExporterConfig, ExporterMetrics};

/// Refuses an invalid `[[exporters]]` entry or two entries with one name.
pub fn validate(exporters: &[ExporterConfig]) -> Result<(), InitError> {
    for (i, e) in exporters.iter().enumerate() {
        e.validate().map_err(InitError::Config)?;
        if exporters.iter().skip(i + 1).any(|o| o.name == e.name) {
            return Err(InitError::Config(format!(
                "two exporters named {:?}",
                e.name
            )));
        }
    }
    Ok(())
}

/// The queue every exporter drains (`<data-dir>/export-queue.redb`); none without exporters.
pub async fn open_queue(config: &Config) -> Result<Option<Arc<ExportQueue>>, InitError> {
    let exporters = &config.sections.exporters;
    if exporters.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = exporters.iter().map(|e| e.name.clone()).collect();
    let dir = config.data_dir.clone();
    let queue = tokio::task::spawn_blocking(move || ExportQueue::open(&dir, &names))
        .await
        .map_err(|e| InitError::Task(e.to_string()))??;
    Ok(Some(Arc::new(queue)))
}

/// Starts one drain loop per exporter; each stops at `stop`, leaving what it did not send queued.
pub fn spawn(
    tasks: &mut JoinSet<Result<(), String>>,
    exporters: &[ExporterConfig],
    queue: &Arc<ExportQueue>,
    metrics: &ExporterMetrics,
    stop: &CancellationToken,
) -> Result<(), InitError> {
    for e in exporters {
        let client = Client::new(e).map_err(InitError::Config)?;
        tracing::info!(exporter = %e.name, endpoint = %e.endpoint, protocol = ?e.protocol, "exporter on");
        let run = run_exporter(
            e.clone(),
            client,
            queue.clone(),
            metrics.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            run.await;
            Ok(())
        });
    }
    Ok(())
}
