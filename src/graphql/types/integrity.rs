//! RunTotals (k6's own counts), RunIntegrity and InstanceIntegrity (reported against stored
//! samples): the figures that say whether a run's results are exact.

use async_graphql::{ContextSelectionSet, Object, Positioned, Value, parser::types::Field};

use crate::graphql::fast::eager::{EagerObject, resolve_list_now, with_sub_selection};
use crate::{
    db::{
        entities::{HasMetrics, test_history},
        repo::runs::integrity_of,
    },
    domain::{
        counts::K6Counts,
        integrity::{InstanceSamples, Integrity},
    },
};

/// What k6 itself counted, summed over every k6 instance's end-of-test summary: exact, whatever
/// InfluxDB kept of the samples.
pub struct RunTotals(pub K6Counts);

impl RunTotals {
    /// k6's counts of a run or a scenario row, when stored.
    pub fn of(row: &impl HasMetrics) -> Option<Self> {
        row.k6_counts().map(Self)
    }
}

#[Object]
impl RunTotals {
    /// HTTP requests k6 made (`http_reqs`).
    async fn requests(&self) -> i64 {
        self.0.requests
    }
    /// Requests k6 judged failed (`http_req_failed`).
    async fn failed_requests(&self) -> i64 {
        self.0.failed_requests
    }
    /// Iterations of the scenario functions (`iterations`).
    async fn iterations(&self) -> i64 {
        self.0.iterations
    }
    /// Bytes sent (`data_sent`).
    async fn data_sent(&self) -> i64 {
        self.0.data_sent
    }
    /// Bytes received (`data_received`).
    async fn data_received(&self) -> i64 {
        self.0.data_received
    }
}

impl EagerObject for RunTotals {
    fn field_now(&self, _ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
        Some(Value::from(match field.node.name.node.as_str() {
            "requests" => self.0.requests,
            "failedRequests" => self.0.failed_requests,
            "iterations" => self.0.iterations,
            "dataSent" => self.0.data_sent,
            "dataReceived" => self.0.data_received,
            _ => return None,
        }))
    }
}

/// Whether InfluxDB holds every request sample k6 reported: the run's figures computed from
/// samples (TPS per second, percentiles) are exact only when it does.
pub struct RunIntegrity(pub Integrity);

impl RunIntegrity {
    pub fn of_run(row: &test_history::Model) -> Option<Self> {
        integrity_of(row).map(Self)
    }
}

/// `Option<i64>` as a GraphQL value.
fn count(value: Option<i64>) -> Value {
    value.map_or(Value::Null, Value::from)
}

#[Object]
impl RunIntegrity {
    /// Requests the k6 instances reported in their end-of-test summaries, summed; null when one
    /// wrote none.
    async fn reported(&self) -> Option<i64> {
        self.0.reported()
    }
    /// Request samples (`http_reqs` points) InfluxDB holds for the run; null when it could not
    /// be read.
    async fn stored(&self) -> Option<i64> {
        self.0.stored()
    }
    /// Reported samples InfluxDB does not hold; null when either side is unknown.
    async fn missing(&self) -> Option<i64> {
        self.0.missing()
    }
    /// Every instance reported and InfluxDB holds exactly what each reported.
    async fn complete(&self) -> bool {
        self.0.complete()
    }
    /// Why the results are not complete, in words; null when they are.
    async fn shortfall(&self) -> Option<String> {
        self.0.shortfall()
    }
    /// Each k6 instance's figures, by instance index.
    async fn instances(&self) -> Vec<InstanceIntegrity> {
        self.0.instances.iter().cloned().map(InstanceIntegrity).collect()
    }
}

impl EagerObject for RunIntegrity {
    fn field_now(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
        Some(match field.node.name.node.as_str() {
            "reported" => count(self.0.reported()),
            "stored" => count(self.0.stored()),
            "missing" => count(self.0.missing()),
            "complete" => Value::Boolean(self.0.complete()),
            "shortfall" => self.0.shortfall().map_or(Value::Null, Value::String),
            "instances" => {
                let instances: Vec<InstanceIntegrity> =
                    self.0.instances.iter().cloned().map(InstanceIntegrity).collect();
                with_sub_selection(ctx, field, |ctx| resolve_list_now(&instances, ctx))?
            }
            _ => return None,
        })
    }
}

/// One k6 instance: the requests it reported against the samples InfluxDB holds of it.
pub struct InstanceIntegrity(pub InstanceSamples);

#[Object]
impl InstanceIntegrity {
    /// The instance's index: its `instance_id` tag and execution segment.
    async fn instance(&self) -> i32 {
        self.0.instance as i32
    }
    /// Requests it reported; null when it wrote no end-of-test counts.
    async fn reported(&self) -> Option<i64> {
        self.0.reported
    }
    /// Its samples InfluxDB holds; null when InfluxDB could not be read.
    async fn stored(&self) -> Option<i64> {
        self.0.stored
    }
    /// Reported samples InfluxDB does not hold; null when either side is unknown.
    async fn missing(&self) -> Option<i64> {
        self.0.missing()
    }
    async fn complete(&self) -> bool {
        self.0.complete()
    }
}

impl EagerObject for InstanceIntegrity {
    fn field_now(&self, _ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
        Some(match field.node.name.node.as_str() {
            "instance" => Value::from(self.0.instance as i32),
            "reported" => count(self.0.reported),
            "stored" => count(self.0.stored),
            "missing" => count(self.0.missing()),
            "complete" => Value::Boolean(self.0.complete()),
            _ => return None,
        })
    }
}
