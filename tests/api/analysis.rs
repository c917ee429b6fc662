//! Results analysis: time series from InfluxDB, run comparisons, verdicts on real runs, and
//! the board at 10,000 runs.

mod board;
mod comparison;
mod timeseries;
mod verdicts;

use std::{collections::HashMap, time::Duration};

use metric_vault::metrics::test_influxd::InfluxServer;
use serde_json::{Value, json};

use crate::{
    helpers::{GraphQlResponse, TestApp, spawn_app_with},
    target_api::project_with_target,
};

/// The InfluxDB database the lab's server (and its k6 runs) use.
const INFLUX_DATABASE: &str = "analysis";

/// A server with its own InfluxDB and the test target imported into a project.
struct Lab {
    app: TestApp,
    influx: Option<InfluxServer>,
    project: String,
    /// Endpoint ids by operationId.
    endpoints: HashMap<String, String>,
}

async fn lab() -> Lab {
    let influx = InfluxServer::start().await;
    let port = influx.port().to_string();
    let app = spawn_app_with(&[("INFLUXDB_PORT", &port), ("INFLUXDB_DATABASE", INFLUX_DATABASE)]).await;
    let (project, endpoints) = project_with_target(&app, "Target").await;
    Lab { app, influx: Some(influx), project, endpoints }
}

impl Lab {
    fn endpoint(&self, operation: &str) -> &str {
        &self.endpoints[operation]
    }

    fn project_id(&self) -> i64 {
        self.project.parse().unwrap()
    }

    fn influx(&self) -> &InfluxServer {
        self.influx.as_ref().expect("InfluxDB still running")
    }

    /// Launches a run and returns its id.
    async fn launch(&self, input: Value) -> String {
        self.app.launch(input).await
    }

    /// Polls run `id` (with `fields`) until `done` holds; fails after `limit`.
    async fn wait_for(
        &self,
        id: &str,
        fields: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let query = format!("query($id: ID!) {{ testHistory(id: $id) {{ status isCompleted {fields} }} }}");
        let started = std::time::Instant::now();
        loop {
            let run = self.app.graphql(&query, json!({ "id": id })).await.data()["testHistory"].clone();
            if done(&run) {
                return run;
            }
            assert!(started.elapsed() < limit, "run {id} still not there after {limit:?}: {run}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_until_finished(&self, id: &str, fields: &str) -> Value {
        self.wait_for(id, fields, Duration::from_secs(90), |run| run["isCompleted"] == true).await
    }

    /// `timeseries` of run `id` with these arguments.
    async fn series(&self, id: &str, step: Option<i64>, scenario: Option<&str>) -> GraphQlResponse {
        self.app
            .graphql(
                r#"query($id: ID!, $step: Int, $scenario: String) { testHistory(id: $id) {
                    timeseries(stepSeconds: $step, scenarioName: $scenario) {
                      time tps avgResponseTime p95ResponseTime errorRate vus } } }"#,
                json!({ "id": id, "step": step, "scenario": scenario }),
            )
            .await
    }
}

/// The points of a `timeseries` answer that must have no errors.
fn points(response: &GraphQlResponse) -> Vec<Value> {
    response.data()["testHistory"]["timeseries"].as_array().unwrap().clone()
}

/// Seconds between consecutive points.
fn steps_between(points: &[Value]) -> Vec<i64> {
    let times: Vec<i64> = points
        .iter()
        .map(|p| {
            chrono::DateTime::parse_from_rfc3339(p["time"].as_str().unwrap()).unwrap().timestamp_millis()
        })
        .collect();
    times.windows(2).map(|pair| (pair[1] - pair[0]) / 1000).collect()
}

/// `Σ tps × step`: the requests a series accounts for.
fn requests_in(points: &[Value], step_seconds: f64) -> f64 {
    points.iter().map(|p| p["tps"].as_f64().unwrap() * step_seconds).sum()
}
