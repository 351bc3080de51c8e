//! The `meshtrace-collector` binary.

use std::process::ExitCode;

use meshtrace_collector::{init, telemetry};

/// mimalloc instead of glibc's malloc: ingest allocates a few small buffers per trace part on the
/// receiving tasks and frees them on the writer thread, which glibc's arenas pay for dearly (see
/// DESIGN.md, "Steps of issue 16").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`: the sixteenth option, 15 in v2 and v3 alike;
/// libmimalloc-sys names its neighbours `mi_option_eager_commit_delay` = 14 and `mi_option_use_numa_nodes`
/// = 16, not it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed memory before returning it to the system: 10 s instead of its 1 s.
/// fjall frees each memtable (tens of MiB) when it is flushed, every few seconds under load; returned
/// after 1 s, that memory was faulted back in (and zeroed by the kernel) for the next memtables, and
/// each return was an `madvise` with its TLB shootdowns: 2 to 3 page faults per request instead of
/// almost none, about 3% more CPU per span, for 35 to 45 MiB less resident memory (DESIGN.md, "Steps
/// of issue 16"). `MIMALLOC_PURGE_DELAY` in the environment still decides.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

fn keep_freed_memory_longer() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options, a plain value it reads when it next purges.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS)
        };
    }
}

fn main() -> ExitCode {
    keep_freed_memory_longer();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn the_option_set_is_mimallocs_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads one of mimalloc's options.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // mimalloc 3's purge delay is 1000 ms by default; its neighbours default to 1 and 0, so another
        // numbering (an upgrade that moved the options) fails here.
        assert_eq!(get(), 1000, "mimalloc's default purge delay");
        keep_freed_memory_longer();
        assert_eq!(get(), PURGE_DELAY_MS);
    }
}
