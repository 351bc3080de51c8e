//! Replays every committed corpus (`fuzz/corpus/<target>/`) and every minimised crash
//! (`fuzz/regressions/<target>/`) through its target: quick, on stable, part of `make test`.

use std::path::Path;

/// Unoptimised frames are many times larger than the fuzzed (release) build's: inputs nested as deep as the
/// decoders allow (serde_json's 128 levels, prost's 100, TraceQL's parentheses) need more than a test
/// thread's 2 MiB of stack here, though not in the release binaries.
const STACK: usize = 256 << 20;

fn replay(folder: &'static str) -> usize {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || replay_here(folder))
        .expect("a replay thread")
        .join()
        .expect("the replay thread ends")
}

fn replay_here(folder: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut n = 0;
    for target in meshtrace_fuzz::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable corpus folder").path();
            let data = std::fs::read(&path).expect("a readable corpus file");
            let ok = std::panic::catch_unwind(|| meshtrace_fuzz::run(target, &data));
            assert!(ok.is_ok(), "{target} fails on {}", path.display());
            n += 1;
        }
    }
    n
}

#[test]
fn corpora_replay_without_failure() {
    let n = replay("corpus");
    assert!(n > 0, "no corpus committed under fuzz/corpus");
}

#[test]
fn minimised_crashes_stay_fixed() {
    replay("regressions");
}

#[test]
fn every_target_has_a_binary_and_a_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for target in meshtrace_fuzz::TARGETS {
        assert!(
            root.join("fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file(),
            "{target}"
        );
        assert!(
            root.join("corpus").join(target).is_dir(),
            "no corpus for {target}"
        );
        assert!(meshtrace_fuzz::run(target, b""), "{target} is not run");
    }
}
