//! k6's CSV samples turned into InfluxDB line protocol: one record of the file, one point.
//!
//! The CSV output of k6 v1 (`--out csv=…`, `K6_CSV_TIME_FORMAT=unix_nano`) writes a header,
//! then one record per sample: `metric_name,timestamp,metric_value,<one column per system
//! tag, sorted>,extra_tags,metadata`. Go's `encoding/csv` writes it: a field holding a comma,
//! a quote or a line break is quoted, its quotes doubled, so one record may span lines.
//! `extra_tags` joins `key=value` pairs with `&` unescaped (a value holding `&` cannot be told
//! apart); the points take `testid` and `instance_id` from the file they came from instead.
//!
//! InfluxDB keeps one point per measurement, tag set and nanosecond: two samples stamped the
//! same nanosecond with the same tags (two VUs finishing requests to one endpoint at once)
//! would collapse into one. [`Points`] moves the later one on by a nanosecond, so every sample
//! k6 counted is stored.

use std::{
    collections::{HashSet, VecDeque, hash_map::DefaultHasher},
    hash::{Hash, Hasher},
    io::Write,
    ops::Range,
};

/// The measurements the server reads (summaries, live snapshots, time series, integrity).
pub const READ_MEASUREMENTS: &[&str] =
    &["http_reqs", "http_req_duration", "http_req_failed", "iterations", "data_sent", "data_received", "vus"];

/// The longest tag value stored, in bytes: InfluxDB refuses a point whose series key (measurement
/// and every tag) is over 64 KiB, and an endpoint path can be longer than that.
const MAX_TAG_VALUE: usize = 4096;

/// How far back (in sample time) a point is remembered to tell same-nanosecond samples apart.
/// Samples reach the file in about the order they were taken; this is far more than they
/// are ever out of order.
const REMEMBERED_NANOS: i64 = 2_000_000_000;

/// Which samples are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// Those of [`READ_MEASUREMENTS`].
    Read,
    /// Every sample k6 takes.
    All,
}

impl Kept {
    fn keeps(self, measurement: &[u8]) -> bool {
        match self {
            Kept::All => true,
            Kept::Read => READ_MEASUREMENTS.iter().any(|name| name.as_bytes() == measurement),
        }
    }
}

/// Why a file's header cannot be read as k6's CSV output.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HeaderError {
    #[error("k6's sample file starts with `{0}`, not with metric_name,timestamp,metric_value")]
    Unexpected(String),
}

/// The columns of one file, read from its header.
#[derive(Clone, Debug)]
pub struct Columns {
    /// The tag columns, by index, with their names; `extra_tags` and `metadata` are not tags.
    tags: Vec<(usize, String)>,
    count: usize,
}

impl Columns {
    /// The columns `header` (its first record, without the line break) names.
    pub fn from_header(header: &[u8]) -> Result<Self, HeaderError> {
        let names: Vec<String> = fields(header).iter().map(|field| field.text(header).into_owned()).collect();
        if names.len() < 3 || names[..3] != ["metric_name", "timestamp", "metric_value"] {
            return Err(HeaderError::Unexpected(String::from_utf8_lossy(header).chars().take(80).collect()));
        }
        let tags = names
            .iter()
            .enumerate()
            .skip(3)
            .filter(|(_, name)| !matches!(name.as_str(), "extra_tags" | "metadata"))
            .map(|(index, name)| (index, name.clone()))
            .collect();
        Ok(Self { tags, count: names.len() })
    }
}

/// The end of the first complete record of `data` (after its line break), or None when
/// `data` holds none yet. A line break inside quotes belongs to the record.
pub fn record_end(data: &[u8]) -> Option<usize> {
    let mut quoted = false;
    let mut at = 0;
    loop {
        let found = memchr::memchr2(b'\n', b'"', &data[at..])? + at;
        if data[found] == b'"' {
            quoted = !quoted;
        } else if !quoted {
            return Some(found + 1);
        }
        at = found + 1;
    }
}

/// One field of a record: where it is, and whether it was quoted (then `""` stands for `"`).
#[derive(Clone, Debug)]
struct Field {
    range: Range<usize>,
    quoted: bool,
}

impl Field {
    fn bytes<'a>(&self, record: &'a [u8]) -> &'a [u8] {
        &record[self.range.clone()]
    }

    fn text<'a>(&self, record: &'a [u8]) -> std::borrow::Cow<'a, str> {
        let text = String::from_utf8_lossy(self.bytes(record));
        if self.quoted { text.replace("\"\"", "\"").into() } else { text }
    }
}

/// The fields of one record (without its line break).
fn fields(record: &[u8]) -> Vec<Field> {
    let record = record.strip_suffix(b"\r").unwrap_or(record);
    let mut found = Vec::with_capacity(16);
    let mut at = 0;
    loop {
        if record.get(at) == Some(&b'"') {
            // Quoted: up to the quote not followed by another one.
            let start = at + 1;
            let mut end = start;
            loop {
                match memchr::memchr(b'"', &record[end..]) {
                    Some(offset) if record.get(end + offset + 1) == Some(&b'"') => end += offset + 2,
                    Some(offset) => {
                        end += offset;
                        break;
                    }
                    None => {
                        end = record.len();
                        break;
                    }
                }
            }
            found.push(Field { range: start..end, quoted: true });
            // Past the closing quote to the comma (or the end).
            at = match memchr::memchr(b',', &record[end.min(record.len())..]) {
                Some(offset) => end + offset + 1,
                None => return found,
            };
        } else {
            match memchr::memchr(b',', &record[at..]) {
                Some(offset) => {
                    found.push(Field { range: at..at + offset, quoted: false });
                    at += offset + 1;
                }
                None => {
                    found.push(Field { range: at..record.len(), quoted: false });
                    return found;
                }
            }
        }
    }
}

/// Where a point's tag comes from: a column of the record, or the file (the run and instance).
enum TagValue {
    Column(usize),
    /// Already escaped.
    Fixed(Vec<u8>),
}

/// One tag of every point, `,key=` escaped once.
struct Tag {
    prefix: Vec<u8>,
    value: TagValue,
}

/// Turns records into points of one run's instance.
pub struct Points {
    /// The tags, sorted by key (InfluxDB indexes them so; given sorted, it has nothing to sort).
    tags: Vec<Tag>,
    columns: usize,
    kept: Kept,
    /// Complete points written.
    pub written: u64,
    /// Points written lately, as (series hash, timestamp), to tell same-nanosecond samples apart.
    recent: HashSet<(u64, i64)>,
    order: VecDeque<(u64, i64)>,
    latest: i64,
    /// Records that were not samples (malformed), skipped.
    pub skipped: u64,
    /// Same-nanosecond samples moved on by a nanosecond.
    pub moved: u64,
}

impl Points {
    pub fn new(columns: Columns, kept: Kept, test_id: i64, instance: u32) -> Self {
        let fixed = [("instance_id", instance.to_string()), ("testid", test_id.to_string())];
        let mut sources: Vec<(&str, TagValue)> = columns
            .tags
            .iter()
            .filter(|(_, name)| !fixed.iter().any(|(key, _)| key == name))
            .map(|(index, name)| (name.as_str(), TagValue::Column(*index)))
            .collect();
        for (key, value) in &fixed {
            let mut escaped = Vec::new();
            escape(value.as_bytes(), b", =", &mut escaped);
            sources.push((key, TagValue::Fixed(escaped)));
        }
        sources.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let tags = sources
            .into_iter()
            .map(|(key, value)| {
                let mut prefix = vec![b','];
                escape(key.as_bytes(), b", =", &mut prefix);
                prefix.push(b'=');
                Tag { prefix, value }
            })
            .collect();
        Self {
            tags,
            columns: columns.count,
            kept,
            written: 0,
            recent: HashSet::new(),
            order: VecDeque::new(),
            latest: i64::MIN,
            skipped: 0,
            moved: 0,
        }
    }

    /// Appends the point of `record` (one complete record, line break included or not) to
    /// `out`, if it is a sample kept; returns whether it wrote one.
    pub fn push(&mut self, record: &[u8], out: &mut Vec<u8>) -> bool {
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        // The measurement first: most records are dropped on it alone.
        let name_end = memchr::memchr(b',', record).unwrap_or(record.len());
        if !self.kept.keeps(&record[..name_end]) {
            return false;
        }
        let fields = fields(record);
        if fields.len() != self.columns {
            self.skipped += 1;
            return false;
        }
        let Some(mut timestamp) =
            std::str::from_utf8(fields[1].bytes(record)).ok().and_then(|t| t.parse::<i64>().ok())
        else {
            self.skipped += 1;
            return false;
        };
        let value = fields[2].bytes(record);
        if !std::str::from_utf8(value).ok().and_then(|v| v.parse::<f64>().ok()).is_some_and(f64::is_finite) {
            self.skipped += 1;
            return false;
        }
        let start = out.len();
        escape(fields[0].text(record).as_bytes(), b", ", out);
        for tag in &self.tags {
            match &tag.value {
                TagValue::Column(index) => {
                    let value = fields[*index].text(record);
                    if !value.is_empty() {
                        out.extend_from_slice(&tag.prefix);
                        escape(cut(&value), b", =", out);
                    }
                }
                TagValue::Fixed(value) => {
                    out.extend_from_slice(&tag.prefix);
                    out.extend_from_slice(value);
                }
            }
        }
        let series = {
            let mut hasher = DefaultHasher::new();
            out[start..].hash(&mut hasher);
            hasher.finish()
        };
        while self.recent.contains(&(series, timestamp)) {
            timestamp += 1;
            self.moved += 1;
        }
        self.remember(series, timestamp);
        out.extend_from_slice(b" value=");
        out.extend_from_slice(value);
        out.push(b' ');
        let _ = writeln!(out, "{timestamp}");
        self.written += 1;
        true
    }

    fn remember(&mut self, series: u64, timestamp: i64) {
        self.recent.insert((series, timestamp));
        self.order.push_back((series, timestamp));
        self.latest = self.latest.max(timestamp);
        while let Some(&(old_series, old_timestamp)) = self.order.front() {
            if old_timestamp >= self.latest.saturating_sub(REMEMBERED_NANOS) {
                break;
            }
            self.order.pop_front();
            self.recent.remove(&(old_series, old_timestamp));
        }
    }
}

/// `value`, cut to at most [`MAX_TAG_VALUE`] bytes at a character boundary.
fn cut(value: &str) -> &[u8] {
    if value.len() <= MAX_TAG_VALUE {
        return value.as_bytes();
    }
    let end = (0..=MAX_TAG_VALUE).rev().find(|&at| value.is_char_boundary(at)).unwrap_or(0);
    &value.as_bytes()[..end]
}

/// Writes `text` with a backslash before each byte of `special`; a line break (which line
/// protocol cannot carry) becomes an escaped space, and so does a trailing backslash (it would
/// escape what follows; InfluxDB 1.x refuses every other way of writing it).
fn escape(text: &[u8], special: &[u8], out: &mut Vec<u8>) {
    if !text.iter().any(|byte| special.contains(byte) || matches!(byte, b'\n' | b'\r' | b'\\')) {
        out.extend_from_slice(text);
        return;
    }
    for (at, &byte) in text.iter().enumerate() {
        match byte {
            b'\n' | b'\r' => out.extend_from_slice(b"\\ "),
            // InfluxDB 1.x reads no way of ending a tag value with a backslash: it becomes a space.
            b'\\' if at + 1 == text.len() => out.extend_from_slice(b"\\ "),
            _ if special.contains(&byte) => {
                out.push(b'\\');
                out.push(byte);
            }
            _ => out.push(byte),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[u8] =
        b"metric_name,timestamp,metric_value,error_code,expected_response,method,name,scenario,status,extra_tags,metadata";

    fn points(kept: Kept) -> Points {
        Points::new(Columns::from_header(HEADER).unwrap(), kept, 42, 1)
    }

    fn convert(points: &mut Points, data: &[u8]) -> String {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(end) = record_end(&data[at..]) {
            points.push(&data[at..at + end], &mut out);
            at += end;
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_sample_becomes_a_point_with_the_run_and_instance_as_tags() {
        let mut points = points(Kept::Read);
        let line = convert(
            &mut points,
            b"http_req_duration,1796644971335659751,0.403444,,true,GET,GET /pets,flood_0,200,instance_id=9&testid=7,\n",
        );
        assert_eq!(
            line,
            "http_req_duration,expected_response=true,instance_id=1,method=GET,name=GET\\ /pets,\
             scenario=flood_0,status=200,testid=42 value=0.403444 1796644971335659751\n"
        );
    }

    #[test]
    fn samples_the_server_does_not_read_are_dropped_unless_all_are_kept() {
        let record = b"http_req_blocked,1796644971335659751,0.28,,true,GET,x,s,200,,\n";
        assert_eq!(convert(&mut points(Kept::Read), record), "");
        assert!(convert(&mut points(Kept::All), record).starts_with("http_req_blocked,"));
    }

    #[test]
    fn quoted_fields_with_commas_quotes_and_line_breaks_are_one_tag_value() {
        let data =
            b"http_reqs,5,1.000000,,true,GET,\"GET /x,y \"\"q\"\"\nz\",default,200,,\nvus,6,3,,,,,,,,\n";
        assert_eq!(record_end(data), Some(data.iter().position(|&b| b == b'v').unwrap()));
        let out = convert(&mut points(Kept::Read), data);
        assert_eq!(
            out,
            "http_reqs,expected_response=true,instance_id=1,method=GET,name=GET\\ /x\\,y\\ \"q\"\\ z,\
             scenario=default,status=200,testid=42 value=1.000000 5\n\
             vus,instance_id=1,testid=42 value=3 6\n"
        );
    }

    #[test]
    fn an_unfinished_record_is_left_for_later() {
        assert_eq!(record_end(b"http_reqs,5,1,,true,GET,\"a\nb"), None);
        assert_eq!(record_end(b"http_reqs,5,1,,tr"), None);
    }

    #[test]
    fn two_samples_of_one_series_in_one_nanosecond_are_both_kept() {
        let mut points = points(Kept::Read);
        let record = b"http_reqs,1000,1,,true,GET,a,s,200,,\n";
        let out = convert(&mut points, &[record.as_slice(), record, record].concat());
        let stamps: Vec<&str> = out.lines().map(|line| line.rsplit(' ').next().unwrap()).collect();
        assert_eq!(stamps, ["1000", "1001", "1002"]);
        assert_eq!(points.moved, 3);
        // Another series at the same nanosecond is no collision.
        let other = convert(&mut points, b"http_reqs,1000,1,,true,GET,b,s,200,,\n");
        assert!(other.ends_with(" 1000\n"), "{other}");
    }

    #[test]
    fn malformed_records_are_skipped_not_written() {
        let mut points = points(Kept::Read);
        let out = convert(
            &mut points,
            b"http_reqs,notatime,1,,true,GET,a,s,200,,\nhttp_reqs,1,NaN,,,,,,,,\nhttp_reqs,1,1\n",
        );
        assert_eq!(out, "");
        assert_eq!(points.skipped, 3);
    }

    #[test]
    fn a_header_that_is_not_k6s_is_refused() {
        assert!(Columns::from_header(b"a,b,c").is_err());
        assert!(Columns::from_header(HEADER).is_ok());
    }

    #[test]
    fn a_tag_value_longer_than_influxdb_takes_is_cut_at_a_character() {
        let mut points = points(Kept::Read);
        let long = format!("GET /{}é{}", "a".repeat(4090), "b".repeat(70_000));
        let record = format!("http_reqs,1,1,,true,GET,{long},s,200,,\n");
        let line = convert(&mut points, record.as_bytes());
        let name = line.split(",name=").nth(1).unwrap().split(",scenario=").next().unwrap();
        assert!(
            name == format!("GET\\ /{}", "a".repeat(4090)),
            "cut before the two-byte é that would pass 4 KiB"
        );
    }

    #[test]
    fn escaping_keeps_line_protocol_whole() {
        let mut out = Vec::new();
        escape(b"a b,c=d\\", b", =", &mut out);
        assert_eq!(out, b"a\\ b\\,c\\=d\\ ");
    }
}
