//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz harness on
//! stable Rust, so that every input the fuzzers were seeded with (or found and kept) runs in the
//! ordinary test suite. The harness is `fuzz/src/lib.rs`, included here as a module; the fuzz
//! crate itself (`fuzz/`, cargo-fuzz layout) runs the same functions under libFuzzer on nightly.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)] // `Events::shared` is for the fuzz target only.
mod harness;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

/// Every file of `fuzz/corpus/<target>/`, sorted by name.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

/// Runs `check` on every input of the target's corpus and reports every input that fails.
fn replay(target: &str, min_inputs: usize, check: impl Fn(&[u8])) {
    let inputs = corpus(target);
    assert!(
        inputs.len() >= min_inputs,
        "{target}: only {} corpus inputs, expected at least {min_inputs}",
        inputs.len()
    );
    let failures: Vec<String> = inputs
        .iter()
        .filter_map(|(path, bytes)| {
            catch_unwind(AssertUnwindSafe(|| check(bytes)))
                .err()
                .map(|panic| {
                    let reason = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    format!("{}: {reason}", path.display())
                })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{target}: {} of {} inputs failed:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
}

#[test]
fn tool_arguments_corpus() {
    replay("tool_arguments", 20, harness::tool_arguments);
}

#[test]
fn datetime_corpus() {
    replay("datetime", 20, harness::datetime);
}

#[test]
fn recurrence_corpus() {
    replay("recurrence", 20, harness::recurrence);
}

#[test]
fn events_corpus() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let events = harness::Events::new(&dir.path().join("events.db"));
    replay("events", 20, |data| events.run(data));
}

/// The harness's own checks reject what they must (so that a passing replay means something),
/// and every target takes degenerate bytes without panicking.
#[test]
fn the_harness_checks_are_real() {
    for (text, newlines) in [
        ("a\u{7}b", true),
        (" padded", false),
        ("", false),
        ("two\nlines", false),
    ] {
        assert!(
            catch_unwind(|| harness::check_text(text, 200, newlines)).is_err(),
            "{text:?} passed check_text"
        );
    }
    assert!(catch_unwind(|| harness::check_text(&"x".repeat(201), 200, false)).is_err());
    assert!(catch_unwind(|| harness::check_tags(["a", "a"].into_iter())).is_err());
    assert!(catch_unwind(|| harness::check_tags(["A"].into_iter())).is_err());
    harness::check_text("fine\nlines", 200, true);
    harness::check_tags(["a", "b"].into_iter());

    let dir = tempfile::tempdir().expect("a temporary directory");
    let events = harness::Events::new(&dir.path().join("events.db"));
    for bytes in [
        &b""[..],
        b"\xff\xfe",
        b"{",
        b"[]",
        b"null",
        b"{\"type\":1}",
        b"{}",
    ] {
        harness::tool_arguments(bytes);
        harness::datetime(bytes);
        harness::recurrence(bytes);
        events.run(bytes);
    }
}
