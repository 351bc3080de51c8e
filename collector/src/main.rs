//! The `meshtrace-collector` binary.

use std::process::ExitCode;

use meshtrace_collector::{init, telemetry};

/// mimalloc instead of glibc's malloc: ingest allocates a few small buffers per trace part on the
/// receiving tasks and frees them on the writer thread, which glibc's arenas pay for dearly (see
/// DESIGN.md, "Steps of issue 16").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = match init::load_config() {
        Ok(config) => config,
        Err(e) => e.exit(),
    };
    telemetry::init_logging(config.log_format, &config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(init::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "collector failed");
            ExitCode::FAILURE
        }
    }
}
