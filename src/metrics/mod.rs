//! Reading k6's samples back: k6 writes every sample of a run to InfluxDB 1.x
//! (`--out influxdb=…`, tagged with the run's `testid`), and the server asks InfluxDB
//! for the figures it shows, with InfluxQL over InfluxDB's HTTP API.

/// Samples that outlive their run: dropping a deleted run's series, the raw-sample retention.
pub mod hygiene;
/// InfluxDB 1.x client: InfluxQL queries and run summaries.
pub mod influx;
/// Stored request samples per k6 instance, for the integrity check.
mod integrity;
/// Per-interval samples of a run for regression verdicts.
pub mod intervals;
/// Live snapshots of running tests: one InfluxDB poller per watched run, shared by its subscribers.
pub mod live;
/// Regression verdicts: a candidate run's interval samples against its baseline's.
pub mod regression;
/// The InfluxQL behind [`influx::InfluxClient::summary`].
mod summary;
/// Per-interval series of a run (`GROUP BY time(step)`), for charts.
pub mod timeseries;

/// A throw-away influxd for tests (unit and integration); not for production use.
#[doc(hidden)]
pub mod test_influxd;
