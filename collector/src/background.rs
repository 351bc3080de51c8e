//! Work that no acknowledgement waits for runs at a lower CPU priority than the work that one does.
//!
//! The receiving threads and the store writer answer senders; fjall's flushes and compactions and the
//! analytics thread only have to keep up on average. On a machine whose cores are all busy (a shared
//! node, a container at its CPU limit, the benchmark's load generator beside the collector), the
//! scheduler then gives the cores to the answering threads first, and the background work takes what is
//! left. It still runs whenever a core would otherwise idle, and it cannot starve ingest of memory: when
//! flushes fall behind, fjall's write buffer makes commits wait, which frees the cores for them. The same
//! idea as RocksDB's lowered priority for its compaction threads.
//!
//! On Linux the nice value belongs to a thread, and a new thread starts with its creator's: lowering a
//! thread lowers every thread it starts afterwards. fjall starts its background threads (flusher, the
//! flush workers the flusher starts, compactor, monitor) while a keyspace opens, so the keyspace is
//! opened from a lowered thread (`lowered`). Elsewhere the nice value is the whole process's, so nothing
//! is changed.

/// How much lower (in nice steps) background threads run than the thread that starts them. At 10 a
/// background thread's share of a contended core is about a tenth of an answering thread's (the
/// scheduler's weights 110 and 1024).
pub const NICE_STEPS: i32 = 10;

/// The highest nice value (the lowest priority) Linux has.
const NICE_MAX: i32 = 19;

/// Lowers the calling thread's priority by `NICE_STEPS` (at most to nice 19); threads it starts later
/// inherit it. Raising it back would need a privilege, so only threads that do background work for good
/// call this. Failure (never expected: lowering needs no privilege) leaves the priority as it was.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let result = rustix::process::getpriority_process(Some(tid)).and_then(|nice| {
            rustix::process::setpriority_process(Some(tid), (nice + NICE_STEPS).min(NICE_MAX))
        });
        if let Err(e) = result {
            tracing::debug!(error = %e, "could not lower a background thread's priority");
        }
    }
}

/// Runs `f` on a new thread of lowered priority and returns its result: whatever threads `f` starts
/// are background threads. The calling thread keeps its priority. Fails only if no thread can be started.
pub fn lowered<T: Send>(f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("lowered".into())
            .spawn_scoped(scope, || {
                lower_this_thread();
                f()
            })?;
        match thread.join() {
            Ok(value) => Ok(value),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn nice() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
    }

    #[test]
    fn lowered_threads_and_their_children_run_lower_and_the_caller_keeps_its_priority() {
        let before = nice();
        let (inside, child) =
            lowered(|| (nice(), std::thread::spawn(nice).join().unwrap())).unwrap();
        assert_eq!(inside, (before + NICE_STEPS).min(NICE_MAX));
        assert_eq!(
            child, inside,
            "a thread started by a lowered thread inherits its priority"
        );
        assert_eq!(nice(), before, "the calling thread keeps its priority");
    }
}
