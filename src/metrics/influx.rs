//! A small InfluxDB 1.x client: `/ping`, `CREATE DATABASE` and InfluxQL queries over
//! the HTTP API, plus the quoting that keeps user text out of the query syntax.
//!
//! Run summaries are built on top of [`InfluxClient::query`] in `metrics::summary`.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde::Deserialize;

/// `GET /ping` must answer within this; a slower InfluxDB counts as down.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// A bound on one query, so a wedged InfluxDB cannot hang a GraphQL request forever.
/// Percentiles over a large run take seconds, hence the generous value.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// InfluxDB 1.x over HTTP.
#[derive(Clone)]
pub struct InfluxClient {
    http: reqwest::Client,
    base_url: String,
    database: String,
}

/// One series of a query result: a measurement (and, with `GROUP BY tag`, one tag
/// combination) with its rows.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Series {
    /// The measurement, e.g. `http_reqs`; empty for answers about no one measurement
    /// (`SHOW SERIES`).
    #[serde(default)]
    pub name: String,
    /// The `GROUP BY` tags of this series; empty without a tag grouping.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Column names; the first is `time`.
    pub columns: Vec<String>,
    /// One entry per row, in `columns` order; times are epoch milliseconds.
    #[serde(default)]
    pub values: Vec<Vec<serde_json::Value>>,
}

/// The closed time range a query reads: `time >= start AND time <= end`.
#[derive(Clone, Copy, Debug)]
pub struct TimeWindow {
    /// First instant included.
    pub start: DateTime<Utc>,
    /// Last instant included.
    pub end: DateTime<Utc>,
}

/// Why talking to InfluxDB failed.
#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    /// No connection, or no answer in time.
    #[error("InfluxDB at {url} is unreachable: {reason}")]
    Unreachable {
        /// The base URL the client was given.
        url: String,
        /// What went wrong, with the underlying causes.
        reason: String,
    },
    /// InfluxDB answered with an error, e.g. a syntax error or an unknown database.
    #[error("InfluxDB refused the query: {0}")]
    Query(String),
    /// InfluxDB refused points as such (a 4xx answer to a write): sending them again cannot help.
    #[error("InfluxDB refused the points: {0}")]
    Refused(String),
    /// The answer was not the JSON InfluxDB 1.x sends.
    #[error("InfluxDB answered something unexpected: {0}")]
    Malformed(String),
}

impl InfluxClient {
    /// A client for `database` on the InfluxDB at `base_url` (e.g. `http://127.0.0.1:8086`).
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, database: impl Into<String>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self { http, base_url, database: database.into() }
    }

    /// The database every query reads.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `GET /ping` answers 204 within ~2 s.
    pub async fn ping(&self) -> bool {
        let Ok(url) = self.endpoint("ping", &[]) else {
            return false;
        };
        match self.http.get(url).timeout(PING_TIMEOUT).send().await {
            Ok(response) => response.status() == StatusCode::NO_CONTENT,
            Err(_) => false,
        }
    }

    /// `CREATE DATABASE` (idempotent) — k6 also creates it, but reads before the first
    /// write must not fail.
    #[tracing::instrument(level = "debug", skip(self), fields(db = %self.database))]
    pub async fn create_database(&self) -> Result<(), InfluxError> {
        let statement = format!("CREATE DATABASE {}", quote_identifier(&self.database));
        // Statements that change things belong in a POST; InfluxDB 1.6 warns about them in a GET.
        let url = self.endpoint("query", &[("q", &statement)])?;
        let response = self.http.post(url).timeout(QUERY_TIMEOUT).send().await;
        let (status, body) = self.read_answer(response).await?;
        parse_query_answer(status, &body).map(|_| ())
    }

    /// Runs one InfluxQL statement that changes something (`DROP SERIES`, `ALTER RETENTION
    /// POLICY`, …) against this database: a POST, as InfluxDB 1.x wants for those.
    #[tracing::instrument(level = "debug", skip(self), fields(db = %self.database))]
    pub async fn execute(&self, influxql: &str) -> Result<Vec<Series>, InfluxError> {
        let url = self.endpoint("query", &[("db", &self.database), ("q", influxql)])?;
        let response = self.http.post(url).timeout(QUERY_TIMEOUT).send().await;
        let (status, body) = self.read_answer(response).await?;
        parse_query_answer(status, &body)
    }

    /// Runs one InfluxQL statement (GET /query?db=…&q=…&epoch=ms) and returns its series;
    /// checks the HTTP status AND the JSON body's `error` / `results[i].error` (an unknown
    /// database answers HTTP 200 with the error inside).
    #[tracing::instrument(level = "debug", skip(self), fields(db = %self.database))]
    pub async fn query(&self, influxql: &str) -> Result<Vec<Series>, InfluxError> {
        let url = self.endpoint("query", &[("db", &self.database), ("q", influxql), ("epoch", "ms")])?;
        let started = std::time::Instant::now();
        let response = self.http.get(url).timeout(QUERY_TIMEOUT).send().await;
        let (status, body) = self.read_answer(response).await?;
        let series = parse_query_answer(status, &body)?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            series = series.len(),
            "InfluxQL query answered"
        );
        Ok(series)
    }

    /// Writes `lines` (line protocol, timestamps in nanoseconds) to this database, waiting at most
    /// `limit` for the answer. A write InfluxDB answers with 5xx, or not at all, is `Unreachable` (worth trying again); a 4xx is `Refused`.
    #[tracing::instrument(level = "debug", skip_all, fields(db = %self.database, bytes = lines.len()))]
    pub async fn write_lines(&self, lines: Vec<u8>, limit: Duration) -> Result<(), InfluxError> {
        let url = self.endpoint("write", &[("db", &self.database), ("precision", "ns")])?;
        let response = self.http.post(url).body(lines).timeout(limit).send().await;
        let (status, body) = self.read_answer(response).await?;
        match status {
            status if status.is_success() => Ok(()),
            status if status.is_client_error() => {
                Err(InfluxError::Refused(format!("{status}: {}", body.trim())))
            }
            status => Err(InfluxError::Unreachable {
                url: self.base_url.clone(),
                reason: format!("{status}: {}", body.trim()),
            }),
        }
    }

    /// `<base_url>/<path>?<params>`, with every parameter form-encoded.
    fn endpoint(&self, path: &str, params: &[(&str, &str)]) -> Result<url::Url, InfluxError> {
        let mut url = url::Url::parse(&format!("{}/{path}", self.base_url)).map_err(|error| {
            InfluxError::Unreachable {
                url: self.base_url.clone(),
                reason: format!("not a valid URL: {error}"),
            }
        })?;
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params);
        }
        Ok(url)
    }

    /// The status and body of an answer; transport failures become `Unreachable`.
    async fn read_answer(
        &self,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<(StatusCode, String), InfluxError> {
        let response = response.map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        let body = response.text().await.map_err(|error| self.unreachable(&error))?;
        Ok((status, body))
    }

    fn unreachable(&self, error: &reqwest::Error) -> InfluxError {
        // reqwest's own message is generic ("error sending request"); the cause chain
        // says what actually happened (connection refused, timed out, …).
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        InfluxError::Unreachable { url: self.base_url.clone(), reason }
    }
}

impl InfluxError {
    /// Whether InfluxDB refused what it was sent (trying again cannot help).
    pub fn is_refusal(&self) -> bool {
        matches!(self, InfluxError::Refused(_))
    }
}

impl Series {
    /// Where `column` is in each row.
    pub fn column_index(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|name| name == column)
    }

    /// `column` as numbers, one entry per row: `None` where the value is null (e.g. an
    /// empty `GROUP BY time` bucket) or not a number. Empty when there is no such column.
    pub fn f64_column(&self, column: &str) -> Vec<Option<f64>> {
        let Some(index) = self.column_index(column) else {
            return Vec::new();
        };
        self.values.iter().map(|row| row.get(index).and_then(serde_json::Value::as_f64)).collect()
    }

    /// `column` of the first row as a number: the answer of a query without `GROUP BY time`.
    pub fn first_f64(&self, column: &str) -> Option<f64> {
        self.f64_column(column).into_iter().next().flatten()
    }

    /// `(bucket start in epoch ms, value)` rows of a `GROUP BY time` answer, nulls left out.
    pub fn buckets(&self, column: &str) -> impl Iterator<Item = (i64, f64)> {
        self.f64_column("time")
            .into_iter()
            .zip(self.f64_column(column))
            .filter_map(|(time, value)| Some((time? as i64, value?)))
    }
}

impl TimeWindow {
    /// The InfluxQL condition for this window, e.g.
    /// `time >= '2025-01-01T00:00:00Z' AND time <= '2025-01-01T00:05:00.5Z'`.
    ///
    /// RFC 3339 literals rather than bare integers: InfluxQL reads a bare integer as
    /// nanoseconds, a classic source of empty results.
    pub fn influxql_condition(&self) -> String {
        format!(
            "time >= {} AND time <= {}",
            quote_string(&self.start.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            quote_string(&self.end.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        )
    }
}

/// `text` as an InfluxQL string literal: single quotes around it, with `\`, `'` and
/// newlines escaped the way InfluxQL's scanner reads them back, so any text stays data.
pub fn quote_string(text: &str) -> String {
    quote_with(text, '\'')
}

/// `name` as a double-quoted InfluxQL identifier (database, measurement, tag or field).
pub fn quote_identifier(name: &str) -> String {
    quote_with(name, '"')
}

fn quote_with(text: &str, quote: char) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push(quote);
    for ch in text.chars() {
        match ch {
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            ch if ch == quote => {
                quoted.push('\\');
                quoted.push(ch);
            }
            ch => quoted.push(ch),
        }
    }
    quoted.push(quote);
    quoted
}

/// The JSON body of `/query`.
#[derive(Deserialize)]
struct QueryAnswer {
    #[serde(default)]
    results: Vec<StatementAnswer>,
    /// Set when the request as a whole failed, e.g. a syntax error (HTTP 400).
    error: Option<String>,
}

#[derive(Deserialize)]
struct StatementAnswer {
    #[serde(default)]
    series: Vec<Series>,
    /// Set when one statement failed, e.g. an unknown database (HTTP 200!).
    error: Option<String>,
}

/// The series of an answer, or the error InfluxDB put in it (at the top level or in any
/// statement's result); an answer that is not InfluxDB's JSON is `Malformed`.
fn parse_query_answer(status: StatusCode, body: &str) -> Result<Vec<Series>, InfluxError> {
    let answer: QueryAnswer = match serde_json::from_str(body) {
        Ok(answer) => answer,
        // Something in front of InfluxDB (a proxy, a wrong port) answered with an error page.
        Err(_) if !status.is_success() => {
            return Err(InfluxError::Query(format!("HTTP {status}: {}", excerpt(body))));
        }
        Err(error) => {
            return Err(InfluxError::Malformed(format!("{error} in HTTP {status} body {}", excerpt(body))));
        }
    };
    if let Some(message) = answer.error {
        return Err(InfluxError::Query(message));
    }
    if let Some(message) = answer.results.iter().find_map(|result| result.error.clone()) {
        return Err(InfluxError::Query(message));
    }
    if !status.is_success() {
        return Err(InfluxError::Query(format!("HTTP {status}: {}", excerpt(body))));
    }
    if answer.results.is_empty() {
        return Err(InfluxError::Malformed(format!("no results in {}", excerpt(body))));
    }
    Ok(answer.results.into_iter().flat_map(|result| result.series).collect())
}

/// The start of a body for an error message; error pages can be long.
fn excerpt(body: &str) -> String {
    const LIMIT: usize = 200;
    match body.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{:?}…", &body[..cut]),
        None => format!("{body:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::test_influxd::InfluxServer;

    /// A loopback port nothing listens on.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    }

    #[test]
    fn string_literals_escape_quotes_backslashes_and_newlines() {
        assert_eq!(quote_string("browse"), "'browse'");
        assert_eq!(quote_string("x' OR '1'='1"), r"'x\' OR \'1\'=\'1'");
        assert_eq!(quote_string(r"a\b"), r"'a\\b'");
        assert_eq!(quote_string("two\nlines"), r"'two\nlines'");
        assert_eq!(quote_identifier(r#"k6 "db""#), r#""k6 \"db\"""#);
    }

    #[test]
    fn windows_become_rfc3339_literals() {
        let window = TimeWindow {
            start: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
            end: DateTime::from_timestamp_millis(1_700_000_001_500).unwrap(),
        };
        assert_eq!(
            window.influxql_condition(),
            "time >= '2023-11-14T22:13:20Z' AND time <= '2023-11-14T22:13:21.500Z'"
        );
    }

    #[test]
    fn errors_inside_an_http_200_answer_are_query_errors() {
        let body = r#"{"results":[{"statement_id":0,"error":"database not found: nope"}]}"#;
        let error = parse_query_answer(StatusCode::OK, body).unwrap_err();
        assert!(matches!(&error, InfluxError::Query(message) if message == "database not found: nope"));

        let body = r#"{"error":"error parsing query: found SELEC"}"#;
        let error = parse_query_answer(StatusCode::BAD_REQUEST, body).unwrap_err();
        assert!(matches!(&error, InfluxError::Query(message) if message.starts_with("error parsing query")));

        let error = parse_query_answer(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>").unwrap_err();
        assert!(matches!(&error, InfluxError::Query(message) if message.contains("502")), "{error}");

        let error = parse_query_answer(StatusCode::OK, "<html>hello</html>").unwrap_err();
        assert!(matches!(error, InfluxError::Malformed(_)));
        let error = parse_query_answer(StatusCode::OK, r#"{"results":[]}"#).unwrap_err();
        assert!(matches!(error, InfluxError::Malformed(_)));
    }

    #[test]
    fn series_columns_read_as_numbers_with_nulls() {
        let body = r#"{"results":[{"statement_id":0,"series":[{"name":"http_reqs",
            "columns":["time","count"],"values":[[1000,2],[2000,null],[3000,1.5]]}]}]}"#;
        let series = parse_query_answer(StatusCode::OK, body).unwrap();
        assert_eq!(series[0].f64_column("count"), vec![Some(2.0), None, Some(1.5)]);
        assert_eq!(series[0].first_f64("time"), Some(1000.0));
        assert!(series[0].f64_column("missing").is_empty());
        assert!(series[0].tags.is_empty());
    }

    #[tokio::test]
    async fn ping_is_true_for_influxdb_and_false_for_a_closed_port() {
        let server = InfluxServer::start().await;
        assert!(server.client("ping").ping().await);
        let nobody =
            InfluxClient::new(crate::tls::client(), format!("http://127.0.0.1:{}", closed_port()), "x");
        assert!(!nobody.ping().await);
    }

    #[tokio::test]
    async fn create_database_is_idempotent_and_an_empty_database_has_no_series() {
        let server = InfluxServer::start().await;
        let client = server.client("fresh");
        client.create_database().await.expect("create");
        client.create_database().await.expect("create again");
        let series = client.query(r#"SELECT count("value") FROM "http_reqs""#).await.expect("query");
        assert!(series.is_empty(), "{series:?}");
    }

    #[tokio::test]
    async fn queries_return_series_with_their_group_by_tags() {
        let server = InfluxServer::start().await;
        let client = server.client("tags");
        client.create_database().await.unwrap();
        let lines = "vus,testid=1,instance_id=0 value=2 1700000000000\n\
                     vus,testid=1,instance_id=1 value=3 1700000000000\n\
                     vus,testid=1,instance_id=1 value=5 1700000001000";
        server.write("tags", lines).await;
        let series = client
            .query(r#"SELECT max("value") FROM "vus" WHERE time >= 0 GROUP BY "instance_id""#)
            .await
            .unwrap();
        let maxima: Vec<_> = series
            .iter()
            .map(|series| (series.tags["instance_id"].as_str(), series.first_f64("max")))
            .collect();
        assert_eq!(maxima, vec![("0", Some(2.0)), ("1", Some(5.0))]);
        assert_eq!(series[0].name, "vus");
        assert_eq!(series[0].columns, vec!["time", "max"]);
    }

    #[tokio::test]
    async fn quoted_text_is_matched_literally() {
        let server = InfluxServer::start().await;
        let client = server.client("quotes");
        client.create_database().await.unwrap();
        // Line protocol escapes spaces and `=` in tag values; quotes and backslashes are plain.
        let lines = r"http_reqs,scenario=x'\ OR\ '1'\='1 value=1 1700000000000
http_reqs,scenario=a\b value=1 1700000000001
http_reqs,scenario=other value=1 1700000000002";
        server.write("quotes", lines).await;
        for (scenario, expected) in [("x' OR '1'='1", 1.0), (r"a\b", 1.0), ("x' OR '1'='2", 0.0)] {
            let statement = format!(
                r#"SELECT count("value") FROM "http_reqs" WHERE "scenario" = {} AND time >= 0"#,
                quote_string(scenario)
            );
            let series = client.query(&statement).await.expect(&statement);
            let count = series.first().and_then(|series| series.first_f64("count")).unwrap_or(0.0);
            assert_eq!(count, expected, "{statement}");
        }
    }

    #[tokio::test]
    async fn an_unknown_database_is_a_query_error_with_influxdbs_message() {
        let server = InfluxServer::start().await;
        let error = server.client("never_created").query(r#"SELECT * FROM "vus""#).await.unwrap_err();
        let expected = "database not found: never_created";
        assert!(matches!(&error, InfluxError::Query(message) if message.contains(expected)), "{error:?}");
        let error = server.client("never_created").query("SELEC nonsense").await.unwrap_err();
        assert!(matches!(&error, InfluxError::Query(message) if message.contains("error parsing query")));
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let url = format!("http://127.0.0.1:{}", closed_port());
        let client = InfluxClient::new(crate::tls::client(), &url, "k6");
        let error = client.query("SHOW DATABASES").await.unwrap_err();
        assert!(
            matches!(&error, InfluxError::Unreachable { url: reported, .. } if *reported == url),
            "{error:?}"
        );
        assert!(error.to_string().starts_with(&format!("InfluxDB at {url} is unreachable: ")), "{error}");
        assert!(matches!(client.create_database().await, Err(InfluxError::Unreachable { .. })));
    }
}

/// The WHERE conditions that select one run's samples within a window.
#[derive(Debug, Clone)]
pub(crate) struct RunFilter {
    /// The window alone.
    pub(crate) time: String,
    /// The run within the window: for run-wide gauges such as `vus`, which carry no scenario.
    pub(crate) run: String,
    /// The run, narrowed to one scenario when one is given: for request samples.
    pub(crate) requests: String,
}

impl RunFilter {
    pub(crate) fn new(test_id: i64, window: TimeWindow, scenario: Option<&str>) -> Self {
        let time = window.influxql_condition();
        let test = format!(r#""testid" = {}"#, quote_string(&test_id.to_string()));
        let run = format!("{test} AND {time}");
        let requests = match scenario {
            Some(key) => format!(r#"{test} AND "scenario" = {} AND {time}"#, quote_string(key)),
            None => run.clone(),
        };
        Self { time, run, requests }
    }
}
