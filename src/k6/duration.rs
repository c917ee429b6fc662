//! k6 duration strings (`30s`, `1m30s`, `2h`, `1d12h`): parsing, validation and formatting.
//!
//! k6 reads stage durations with Go's `time.ParseDuration`, extended with a
//! leading whole-day part (`1d`, `2d12h`) and with bare numbers meaning
//! milliseconds. We accept exactly the Go syntax plus the day prefix, but
//! **require a unit**: a bare `30` silently meaning 30 ms is a classic
//! load-test mistake (the user meant 30 seconds), so we refuse it instead.
//! Signs are refused too, because no stage can last a negative time and a
//! leading `+` only adds ways to spell the same thing.
//!
//! Anything this module accepts is accepted by k6 unchanged, so validated
//! strings can be copied into a script verbatim.

use std::time::Duration;

use super::plan::StagePlan;

const HINT: &str = "use e.g. 30s, 1m30s, 2h";

/// Why a string is not a k6 duration. Every message names the offending input
/// and ends with an example of a valid one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("the duration is empty; {HINT}")]
    Empty,
    /// A number without a unit, which k6 would read as milliseconds.
    #[error("`{input}` has no unit; add one, e.g. {input}s for seconds or {input}ms for milliseconds")]
    MissingUnit { input: String },
    /// A leading `-` or `+`.
    #[error("`{input}` has a sign; durations are always positive, {HINT}")]
    Signed { input: String },
    /// Spaces anywhere, e.g. `1m 30s`.
    #[error("`{input}` contains spaces; write the parts together, e.g. 1m30s")]
    Whitespace { input: String },
    /// A unit k6 does not know, e.g. `1x` or `5sec`.
    #[error("`{input}` is not a k6 duration (unknown unit `{unit}`; units are h, m, s, ms, us, ns); {HINT}")]
    UnknownUnit { input: String, unit: String },
    /// A unit or decimal point with no digits, e.g. `s` or `.s`.
    #[error("`{input}` is not a k6 duration (a number is missing); {HINT}")]
    MissingNumber { input: String },
    /// Days anywhere but as a leading whole number, e.g. `1.5d` or `2h1d`.
    #[error("`{input}` is not a k6 duration (days must be a whole number at the start, e.g. 1d12h); {HINT}")]
    MisplacedDays { input: String },
    /// Longer than k6 can represent (about 292 years).
    #[error("`{input}` is too long; k6 durations must stay under about 292 years")]
    TooLong { input: String },
}

/// k6 stores durations as signed 64-bit nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Fraction digits beyond this are below a nanosecond even for hours, and
/// ignoring them keeps the arithmetic inside `u128`.
const MAX_FRACTION_DIGITS: usize = 18;

const NANOS_PER_DAY: u128 = 24 * 3_600 * 1_000_000_000;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        // Go accepts both the micro sign (U+00B5) and the Greek mu (U+03BC).
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// Parses a k6 stage duration such as `30s`, `1m30s`, `1.5s`, `500ms` or `1d12h`.
///
/// Accepts one or more `<number><unit>` parts with units `h`, `m`, `s`, `ms`,
/// `us`/`µs`, `ns`, optionally preceded by a whole number of days (`<n>d`).
/// Numbers may have a fractional part (`1.5h`, `.5s`). Unlike k6, a number
/// without a unit is rejected (see the module docs).
pub fn parse_k6_duration(input: &str) -> Result<Duration, DurationError> {
    let owned = || input.to_owned();
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    if input.chars().any(char::is_whitespace) {
        return Err(DurationError::Whitespace { input: owned() });
    }
    if input.starts_with(['-', '+']) {
        return Err(DurationError::Signed { input: owned() });
    }
    if input.bytes().all(|b| b.is_ascii_digit() || b == b'.') && input.bytes().any(|b| b.is_ascii_digit()) {
        return Err(DurationError::MissingUnit { input: owned() });
    }

    let mut rest = input;
    let mut total: u128 = 0;
    let mut first = true;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after_number) = rest.split_at(number_len);
        let unit_len =
            after_number.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        let number = Number::parse(number).ok_or_else(|| DurationError::MissingNumber { input: owned() })?;

        let part = if unit == "d" {
            if !first || number.fraction.is_some() {
                return Err(DurationError::MisplacedDays { input: owned() });
            }
            number.scaled(NANOS_PER_DAY)
        } else if unit.is_empty() {
            // Only reachable after a valid part, e.g. the trailing `30` in `1m30`.
            return Err(DurationError::MissingUnit { input: owned() });
        } else {
            let nanos = unit_nanos(unit)
                .ok_or_else(|| DurationError::UnknownUnit { input: owned(), unit: unit.to_owned() })?;
            number.scaled(nanos)
        };
        total = part
            .and_then(|part| total.checked_add(part))
            .filter(|sum| *sum <= MAX_NANOS)
            .ok_or_else(|| DurationError::TooLong { input: owned() })?;
        rest = after_unit;
        first = false;
    }
    let total = u64::try_from(total).map_err(|_| DurationError::TooLong { input: owned() })?;
    Ok(Duration::from_nanos(total))
}

/// The digits of one `<number>` part, split at the decimal point.
struct Number<'a> {
    whole: &'a str,
    fraction: Option<&'a str>,
}

impl<'a> Number<'a> {
    /// `None` unless there is at least one digit and at most one point.
    fn parse(text: &'a str) -> Option<Self> {
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let has_digit = !whole.is_empty() || fraction.is_some_and(|f| !f.is_empty());
        let single_point = fraction.is_none_or(|f| !f.contains('.'));
        (has_digit && single_point).then_some(Self { whole, fraction })
    }

    /// The value in nanoseconds for a unit of `unit_nanos`; `None` on overflow.
    fn scaled(&self, unit_nanos: u128) -> Option<u128> {
        let mut whole: u128 = 0;
        for digit in self.whole.bytes() {
            whole = whole.checked_mul(10)?.checked_add(u128::from(digit - b'0'))?;
            if whole > MAX_NANOS {
                return None;
            }
        }
        let mut nanos = whole.checked_mul(unit_nanos)?;
        if let Some(fraction) = self.fraction {
            let digits = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
            let mut numerator: u128 = 0;
            for digit in digits.bytes() {
                numerator = numerator * 10 + u128::from(digit - b'0');
            }
            let denominator = 10u128.pow(u32::try_from(digits.len()).ok()?);
            nanos = nanos.checked_add(numerator * unit_nanos / denominator)?;
        }
        Some(nanos)
    }
}

/// Returns whether `input` is a duration [`parse_k6_duration`] accepts.
pub fn is_valid_k6_duration(input: &str) -> bool {
    parse_k6_duration(input).is_ok()
}

/// Formats a duration in the compact syntax k6 reads back exactly:
/// `0s`, `250ms`, `1.5us`, `45s`, `1m30s`, `2h`, `1h0.5s`.
///
/// Zero parts are left out; sub-second remainders of longer durations become
/// fractional seconds, and durations under a second use the largest sub-second
/// unit that keeps the number at least 1.
pub fn format_k6_duration(duration: Duration) -> String {
    let total_nanos = duration.as_nanos();
    if total_nanos == 0 {
        return "0s".to_owned();
    }
    if duration < Duration::from_secs(1) {
        let (unit_nanos, unit) = if total_nanos >= 1_000_000 {
            (1_000_000, "ms")
        } else if total_nanos >= 1_000 {
            (1_000, "us")
        } else {
            (1, "ns")
        };
        return format!("{}{unit}", decimal(total_nanos, unit_nanos));
    }
    let seconds = duration.as_secs();
    let (hours, minutes, whole_seconds) = (seconds / 3_600, seconds / 60 % 60, seconds % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    let second_nanos = u128::from(whole_seconds) * 1_000_000_000 + u128::from(duration.subsec_nanos());
    if second_nanos > 0 {
        out.push_str(&format!("{}s", decimal(second_nanos, 1_000_000_000)));
    }
    out
}

/// `value / unit` as a decimal without trailing zeros, computed exactly.
fn decimal(value: u128, unit: u128) -> String {
    let (whole, remainder) = (value / unit, value % unit);
    if remainder == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let fraction = format!("{remainder:0width$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// Total length of a run of stages.
///
/// Plans only hold validated stages, so an unparsable duration is a bug
/// upstream: it trips a debug assertion and otherwise counts as zero rather
/// than failing script generation. The sum saturates instead of overflowing.
pub fn total_duration(stages: &[StagePlan]) -> Duration {
    stages.iter().fold(Duration::ZERO, |sum, stage| {
        let parsed = parse_k6_duration(&stage.duration);
        debug_assert!(parsed.is_ok(), "unvalidated stage duration {:?}", stage.duration);
        sum.saturating_add(parsed.unwrap_or(Duration::ZERO))
    })
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn accepts_k6_stage_durations() {
        let cases = [
            ("30s", Duration::from_secs(30)),
            ("1m30s", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7_200)),
            ("1.5s", ms(1_500)),
            ("500ms", ms(500)),
            (".5s", ms(500)),
            ("5.s", Duration::from_secs(5)),
            ("1h2m3s4ms5us6ns", Duration::new(3_723, 4_005_006)),
            ("10us", Duration::from_micros(10)),
            ("10\u{b5}s", Duration::from_micros(10)),
            ("10\u{3bc}s", Duration::from_micros(10)),
            ("0s", Duration::ZERO),
            ("1d", Duration::from_secs(86_400)),
            ("1d12h", Duration::from_secs(129_600)),
            ("30s30s", Duration::from_secs(60)),
            ("0.1h", Duration::from_secs(360)),
            ("1.000000000000000000001s", Duration::from_secs(1)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_k6_duration(input), Ok(expected), "{input}");
            assert!(is_valid_k6_duration(input), "{input}");
        }
    }

    #[test]
    fn rejects_what_k6_would_misread_or_refuse() {
        type IsExpected = fn(&DurationError) -> bool;
        let cases: [(&str, IsExpected); 14] = [
            ("", |e| matches!(e, DurationError::Empty)),
            ("30", |e| matches!(e, DurationError::MissingUnit { .. })),
            ("1.5", |e| matches!(e, DurationError::MissingUnit { .. })),
            ("1m30", |e| matches!(e, DurationError::MissingUnit { .. })),
            ("-5s", |e| matches!(e, DurationError::Signed { .. })),
            ("+5s", |e| matches!(e, DurationError::Signed { .. })),
            ("1x", |e| matches!(e, DurationError::UnknownUnit { unit, .. } if unit == "x")),
            ("5sec", |e| matches!(e, DurationError::UnknownUnit { unit, .. } if unit == "sec")),
            ("s", |e| matches!(e, DurationError::MissingNumber { .. })),
            (".s", |e| matches!(e, DurationError::MissingNumber { .. })),
            ("1..5s", |e| matches!(e, DurationError::MissingNumber { .. })),
            ("1m 30s", |e| matches!(e, DurationError::Whitespace { .. })),
            ("1.5d", |e| matches!(e, DurationError::MisplacedDays { .. })),
            ("2h1d", |e| matches!(e, DurationError::MisplacedDays { .. })),
        ];
        for (input, is_expected) in cases {
            let error = parse_k6_duration(input).expect_err(input);
            assert!(is_expected(&error), "{input}: {error:?}");
        }
    }

    #[test]
    fn rejects_durations_past_the_int64_nanosecond_limit() {
        // 2562047h is the largest whole hour Go's time.Duration can hold.
        assert!(parse_k6_duration("2562047h").is_ok());
        for input in
            ["2562048h", "9223372036855ms", "99999999999999999999999999999s", "106752d", "2562047h60m"]
        {
            assert!(matches!(parse_k6_duration(input), Err(DurationError::TooLong { .. })), "{input}");
        }
    }

    #[test]
    fn error_messages_name_the_input_and_show_examples() {
        let message = parse_k6_duration("1x").unwrap_err().to_string();
        assert!(message.starts_with("`1x` is not a k6 duration"), "{message}");
        assert!(message.ends_with("use e.g. 30s, 1m30s, 2h"), "{message}");
        let message = parse_k6_duration("30").unwrap_err().to_string();
        assert!(message.contains("30s for seconds"), "{message}");
    }

    #[test]
    fn formats_compactly_and_round_trips() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_nanos(1_500), "1.5us"),
            (ms(250), "250ms"),
            (Duration::from_secs(45), "45s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(7_200), "2h"),
            (Duration::new(3_600, 500_000_000), "1h0.5s"),
            (Duration::new(3_661, 1), "1h1m1.000000001s"),
            (Duration::from_secs(86_400 * 2), "48h"),
        ];
        for (duration, expected) in cases {
            assert_eq!(format_k6_duration(duration), expected);
            assert_eq!(parse_k6_duration(expected), Ok(duration), "{expected}");
        }
    }

    #[test]
    fn total_duration_sums_stages() {
        let stages: Vec<StagePlan> = ["30s", "1m", "500ms"]
            .into_iter()
            .map(|duration| StagePlan { duration: duration.to_owned(), target: 1 })
            .collect();
        assert_eq!(total_duration(&stages), ms(90_500));
        assert_eq!(total_duration(&[]), Duration::ZERO);
    }
}
