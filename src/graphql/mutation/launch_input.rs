//! The InputObjects of `launchLoadTest`, and how they become the lifecycle's plain
//! [`LaunchRequest`] (ids parsed, naming the field of a malformed one).

use async_graphql::{ID, InputObject, Json};
use serde_json::Value;

use crate::{
    domain::{Executor, RunnerKind},
    error::AppResult,
    graphql::types::parse_id,
    lifecycle::launch::{LaunchRequest, RequestValues, ScenarioRequest, StageRequest},
};

/// What to run: `LaunchLoadTestInput`.
#[derive(InputObject, Clone, Debug)]
#[graphql(name = "LaunchLoadTestInput")]
pub struct LaunchInput {
    /// Optional: taken from the scenarios' endpoints, which must all belong to one project.
    pub project_id: Option<ID>,
    pub title: String,
    pub description: Option<String>,
    pub target_tps: Option<f64>,
    /// Defaults to the server's configured runner.
    pub runner: Option<RunnerKind>,
    /// Split the load across this many k6 instances (execution segments). Default 1.
    #[graphql(default = 1)]
    pub parallelism: Option<i32>,
    pub scenarios: Vec<ScenarioInput>,
}

/// One scenario: `ScenarioInput`.
#[derive(InputObject, Clone, Debug)]
pub struct ScenarioInput {
    pub name: String,
    pub endpoint_id: ID,
    pub executor: Executor,
    /// Seconds each virtual user sleeps between iterations.
    #[graphql(default = 1.0)]
    pub think_time: Option<f64>,
    /// CONSTANT_*: exactly one stage. RAMPING_*: one or more. target = VUs (VU executors) or iterations per second (arrival-rate executors).
    pub stages: Vec<StageInput>,
    /// For the arrival-rate executors: the most VUs k6 may use.
    pub max_vus: Option<i32>,
    /// p95 response time target, ms. Becomes a k6 threshold.
    pub response_time_target: Option<f64>,
    /// Error rate target, percent. Becomes a k6 threshold.
    pub error_rate_target: Option<f64>,
    /// Values for this request; anything not given comes from the document's examples.
    pub request: Option<RequestInput>,
}

/// One stage: `StageInput`.
#[derive(InputObject, Clone, Debug)]
pub struct StageInput {
    /// A k6 duration: "30s", "1m30s", "2h".
    pub duration: String,
    pub target: i32,
}

/// Request values: `RequestInput`.
#[derive(InputObject, Clone, Debug, Default)]
pub struct RequestInput {
    pub path_params: Option<Json<Value>>,
    pub query_params: Option<Json<Value>>,
    /// Header values by name. Credentials (`Authorization`, `Proxy-Authorization`, `Cookie`, and any
    /// name containing auth, cookie, token, key, secret or password) stay out of the k6 script: k6 reads
    /// them from its environment, and readers below OPERATOR see them as `***`.
    pub headers: Option<Json<Value>>,
    pub body: Option<Json<Value>>,
    /// More header names (any case) whose values are secret like credentials; each must be in `headers`.
    pub secret_headers: Option<Vec<String>>,
}

impl LaunchInput {
    /// The request the lifecycle validates; an id that is not one is `BAD_USER_INPUT`.
    pub fn into_request(self) -> AppResult<LaunchRequest> {
        let project_id = self.project_id.as_ref().map(|id| parse_id(id, "input.projectId")).transpose()?;
        let scenarios = self
            .scenarios
            .into_iter()
            .enumerate()
            .map(|(index, scenario)| scenario.into_request(index))
            .collect::<AppResult<_>>()?;
        Ok(LaunchRequest {
            project_id,
            title: self.title,
            description: self.description,
            target_tps: self.target_tps,
            runner: self.runner,
            parallelism: self.parallelism,
            scenarios,
        })
    }
}

impl ScenarioInput {
    fn into_request(self, index: usize) -> AppResult<ScenarioRequest> {
        Ok(ScenarioRequest {
            endpoint_id: parse_id(&self.endpoint_id, &format!("scenarios[{index}].endpointId"))?,
            name: self.name,
            executor: self.executor,
            think_time: self.think_time,
            stages: self
                .stages
                .into_iter()
                .map(|stage| StageRequest { duration: stage.duration, target: stage.target })
                .collect(),
            max_vus: self.max_vus,
            response_time_target: self.response_time_target,
            error_rate_target: self.error_rate_target,
            request: self.request.map(|request| RequestValues {
                path_params: request.path_params.map(|Json(value)| value),
                query_params: request.query_params.map(|Json(value)| value),
                headers: request.headers.map(|Json(value)| value),
                body: request.body.map(|Json(value)| value),
                secret_headers: request.secret_headers,
            }),
        })
    }
}
