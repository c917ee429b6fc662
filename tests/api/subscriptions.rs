//! Subscriptions over websocket, against the real server with a real InfluxDB and real k6
//! runs: live metrics, status events (across replicas on PostgreSQL), the websocket
//! protocol itself, and real JavaScript clients (tests/interop).

mod interop;
mod live_metrics;
mod protocol;
mod status_events;
pub(crate) mod support;
