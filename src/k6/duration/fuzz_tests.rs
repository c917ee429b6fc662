//! Property tests for the k6 duration parser: whatever text arrives, it answers without
//! panicking, and what it accepts it can write back exactly.
//!
//! CI runs a few hundred cases; `make fuzz` runs [`fuzz_durations_for_a_while`] for
//! `FUZZ_SECONDS`. proptest keeps every failure it finds in `proptest-regressions/`, which is
//! committed, so a crash found once is replayed by every later run.

use std::time::Duration;

use proptest::prelude::*;

use super::{format_k6_duration, parse_k6_duration};

/// Text that looks like durations: numbers, fractions, units (some wrong), repeated.
fn duration_like() -> impl Strategy<Value = String> {
    "(-?[0-9]{0,12}(\\.[0-9]{0,6})?(d|h|m|s|ms|us|µs|μs|ns|x|)){0,5}"
}

/// Any text at all, including control characters and non-ASCII.
fn any_text() -> impl Strategy<Value = String> {
    "\\PC{0,24}|.{0,24}"
}

fn check(text: &str) -> Result<(), TestCaseError> {
    if let Ok(duration) = parse_k6_duration(text) {
        let written = format_k6_duration(duration);
        prop_assert_eq!(
            parse_k6_duration(&written),
            Ok(duration),
            "{:?} -> {:?} -> {}",
            text,
            duration,
            written
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn duration_like_text_parses_or_is_refused_and_round_trips(text in duration_like()) {
        check(&text)?;
    }

    #[test]
    fn any_text_is_answered_without_a_panic(text in any_text()) {
        check(&text)?;
    }

    #[test]
    fn every_duration_is_written_so_k6_reads_it_back(nanos in 0u64..=400 * 24 * 3_600 * 1_000_000_000) {
        let duration = Duration::from_nanos(nanos);
        prop_assert_eq!(parse_k6_duration(&format_k6_duration(duration)), Ok(duration));
    }
}

/// Inputs that once failed, kept in `tests/fixtures/fuzz/k6-duration/`.
#[test]
fn saved_inputs_still_pass() {
    for (path, text) in crate::fuzzing::saved_inputs("k6-duration") {
        check(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// `make fuzz`: the same properties, with fresh random inputs, until `FUZZ_SECONDS` pass.
#[test]
#[ignore = "run by `make fuzz`, bounded by FUZZ_SECONDS"]
fn fuzz_durations_for_a_while() {
    crate::fuzzing::fuzz_for_a_while("k6-duration", prop_oneof![duration_like(), any_text()], check);
}
