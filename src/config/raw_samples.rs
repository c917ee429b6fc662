//! How long InfluxDB keeps the raw k6 samples (`INFLUXDB_RAW_RETENTION`).
//!
//! A run's summary is stored in the database when it ends, so the samples are needed only for
//! its time series and for re-reading results. Unset (the default) leaves InfluxDB's retention
//! alone: samples are kept forever, as before. Set, the server makes it the duration of the
//! database's default retention policy (the one k6 writes to) at start-up, and again once
//! InfluxDB answers if it was down.

use super::{ConfigError, Env};

const EXPECTED: &str =
    "INF, or a whole number of hours (h), days (d) or weeks (w) of at least 1h, e.g. 720h or 30d";

/// What `INFLUXDB_RAW_RETENTION` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RawRetention {
    /// Unset: InfluxDB's retention policy is not touched.
    #[default]
    Untouched,
    /// `INF`: keep samples forever.
    Forever,
    /// Keep samples this many hours.
    Hours(u64),
}

impl RawRetention {
    pub(super) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        match env.optional("INFLUXDB_RAW_RETENTION") {
            None => Ok(Self::Untouched),
            Some(value) => Self::parse(&value).ok_or(ConfigError {
                variable: "INFLUXDB_RAW_RETENTION",
                value,
                expected: EXPECTED,
            }),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("inf") {
            return Some(Self::Forever);
        }
        let unit_at = text.len().checked_sub(1)?;
        let (number, unit) = text.split_at(unit_at);
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let per_unit = match unit {
            "h" => 1,
            "d" => 24,
            "w" => 24 * 7,
            _ => return None,
        };
        // InfluxDB refuses retention policies shorter than an hour; a century is plenty.
        let hours = number.parse::<u64>().ok()?.checked_mul(per_unit)?;
        (1..=24 * 366 * 100).contains(&hours).then_some(Self::Hours(hours))
    }

    /// `DURATION … SHARD DURATION …` for `ALTER RETENTION POLICY`, or None when untouched.
    /// The shard group duration follows InfluxDB's own choice for a new policy (1h under two
    /// days, 1d up to six months, 7d beyond and for INF): a shard is dropped whole once all of
    /// it is older than the retention, so it must not be much longer than the retention.
    pub fn influxql_durations(&self) -> Option<String> {
        let (duration, shard) = match *self {
            Self::Untouched => return None,
            Self::Forever => ("INF".to_owned(), "7d"),
            Self::Hours(hours) if hours < 48 => (format!("{hours}h"), "1h"),
            Self::Hours(hours) if hours <= 24 * 183 => (format!("{hours}h"), "1d"),
            Self::Hours(hours) => (format!("{hours}h"), "7d"),
        };
        Some(format!("DURATION {duration} SHARD DURATION {shard}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reads_inf_hours_days_and_weeks() {
        assert_eq!(RawRetention::parse("INF"), Some(RawRetention::Forever));
        assert_eq!(RawRetention::parse("inf"), Some(RawRetention::Forever));
        assert_eq!(RawRetention::parse("1h"), Some(RawRetention::Hours(1)));
        assert_eq!(RawRetention::parse("30d"), Some(RawRetention::Hours(720)));
        assert_eq!(RawRetention::parse("2w"), Some(RawRetention::Hours(336)));
        for bad in ["0h", "30", "d", "1.5d", "-1d", "30m", "30 d", "99999999999999999999d", "1y"] {
            assert_eq!(RawRetention::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn shard_groups_are_no_longer_than_influxdb_would_choose() {
        let durations = |r: RawRetention| r.influxql_durations();
        assert_eq!(durations(RawRetention::Untouched), None);
        assert_eq!(durations(RawRetention::Forever).unwrap(), "DURATION INF SHARD DURATION 7d");
        assert_eq!(durations(RawRetention::Hours(24)).unwrap(), "DURATION 24h SHARD DURATION 1h");
        assert_eq!(durations(RawRetention::Hours(720)).unwrap(), "DURATION 720h SHARD DURATION 1d");
        assert_eq!(durations(RawRetention::Hours(24 * 365)).unwrap(), "DURATION 8760h SHARD DURATION 7d");
    }
}
