//! A launch request (from `launchLoadTest`, with numeric ids): validated in full before
//! anything is written or started, then turned into the k6 plan. Every violation names its field, e.g. `scenarios[1].stages[0].duration`.

use std::{collections::HashSet, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    config::LoadBudget,
    db::repo::runs::{NewRun, NewScenario, PlanLink},
    domain::{Executor, RunnerKind},
    error::{AppError, AppResult},
    k6::{ScenarioPlan, StagePlan, parse_k6_duration, plan::arrival_rate_vus, scenario_key},
};

mod budget;
mod request;

pub use request::{MASKED, mask_secret_headers};
use request::{request_json, request_plan};

const TITLE_MAX: usize = 200;
const NAME_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 20_000;
const MAX_SCENARIOS: usize = 50;
const MAX_STAGES: usize = 100;
/// Instances one run may be split across.
pub const MAX_PARALLELISM: i32 = 64;
const MAX_THINK_TIME: f64 = 3_600.0;
/// k6 refuses constant executors shorter than this.
const MIN_CONSTANT_DURATION: Duration = Duration::from_secs(1);

/// What to run, as `launchLoadTest` (or a saved plan) asks for it; validated by [`validate`].
/// Its JSON form (field names as in `LaunchLoadTestInput`) is a saved plan's definition.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchRequest {
    /// Optional: taken from the scenarios' endpoints, which must all belong to one project.
    pub project_id: Option<i64>,
    pub title: String,
    pub description: Option<String>,
    pub target_tps: Option<f64>,
    /// Defaults to the server's configured runner.
    #[serde(with = "crate::domain::by_name::option")]
    pub runner: Option<RunnerKind>,
    /// k6 instances; 1 when not given.
    pub parallelism: Option<i32>,
    pub scenarios: Vec<ScenarioRequest>,
}

/// One scenario of a [`LaunchRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioRequest {
    pub name: String,
    pub endpoint_id: i64,
    #[serde(with = "crate::domain::by_name")]
    pub executor: Executor,
    /// Seconds; 1 when not given.
    pub think_time: Option<f64>,
    pub stages: Vec<StageRequest>,
    pub max_vus: Option<i32>,
    pub response_time_target: Option<f64>,
    pub error_rate_target: Option<f64>,
    pub request: Option<RequestValues>,
}

/// One stage: a k6 duration and a target.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageRequest {
    pub duration: String,
    pub target: i32,
}

/// The values a scenario's request is sent with (JSON as the caller gave it). Its JSON form is
/// what the history keeps (`scenario_history.request`), secret values included: only
/// [`mask_secret_headers`] copies of it leave the server below OPERATOR.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestValues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_params: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_params: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_headers: Option<Vec<String>>,
}

pub use crate::db::repo::catalogue::LaunchEndpoint;

/// A launch that passed every check: what to store and what to render.
#[derive(Clone, Debug)]
pub struct ValidatedLaunch {
    pub project_id: i64,
    pub title: String,
    pub description: Option<String>,
    pub target_tps: Option<f64>,
    pub runner: RunnerKind,
    pub parallelism: u32,
    pub scenarios: Vec<ValidatedScenario>,
}

/// A scenario with its plan and what the history keeps of the input.
#[derive(Clone, Debug)]
pub struct ValidatedScenario {
    pub endpoint_id: i64,
    pub max_vus: Option<i32>,
    pub request: Option<Value>,
    pub plan: ScenarioPlan,
}

impl ValidatedLaunch {
    /// The rows recorded for it.
    pub fn new_run(&self, owner_instance: &str, lease_expires_at: chrono::DateTime<chrono::Utc>) -> NewRun {
        let scenarios = self
            .scenarios
            .iter()
            .map(|scenario| {
                let plan = &scenario.plan;
                NewScenario {
                    endpoint_id: scenario.endpoint_id,
                    name: plan.display_name.clone(),
                    key: plan.key.clone(),
                    executor: plan.executor,
                    think_time: plan.think_time,
                    max_vus: scenario.max_vus,
                    response_time_target: plan.response_time_target,
                    error_rate_target: plan.error_rate_target,
                    request: scenario.request.clone(),
                    stages: plan
                        .stages
                        .iter()
                        .map(|stage| (stage.duration.clone(), stage.target as i32))
                        .collect(),
                }
            })
            .collect();
        NewRun {
            project_id: self.project_id,
            title: self.title.clone(),
            description: self.description.clone(),
            target_tps: self.target_tps,
            runner: self.runner,
            parallelism: self.parallelism as i32,
            scenarios,
            owner_instance: owner_instance.to_owned(),
            lease_expires_at,
            plan: PlanLink::None,
        }
    }
}

/// The limits a launch is checked against, from the settings.
#[derive(Clone, Copy, Debug)]
pub struct LaunchLimits {
    pub max_test_duration: Duration,
    pub default_runner: RunnerKind,
    /// `MAX_VUS_PER_TEST` and `MAX_RATE_PER_TEST`.
    pub budget: LoadBudget,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> AppError {
    AppError::bad_input(field, message)
}

fn finite_at_least(field: &str, value: f64, min: f64) -> AppResult<f64> {
    if value.is_finite() && value >= min {
        Ok(value)
    } else {
        Err(bad(field, format!("`{field}` must be a number ≥ {min}")))
    }
}

/// The endpoint ids the scenarios name; the caller loads them for [`validate`].
pub fn endpoint_ids(input: &LaunchRequest) -> Vec<i64> {
    input.scenarios.iter().map(|s| s.endpoint_id).collect()
}

/// Checks every rule and builds the plan. `endpoints` are the loaded scenario endpoints.
pub fn validate(
    input: &LaunchRequest,
    endpoints: &[LaunchEndpoint],
    limits: LaunchLimits,
) -> AppResult<ValidatedLaunch> {
    let title = input.title.trim();
    if title.is_empty() || title.chars().count() > TITLE_MAX {
        return Err(bad("input.title", format!("title must be 1 to {TITLE_MAX} characters")));
    }
    if title.chars().any(char::is_control) {
        return Err(bad(
            "input.title",
            "a title is one line of text: no control characters (line breaks, escapes)",
        ));
    }
    let description = input.description.as_deref().map(str::trim).filter(|d| !d.is_empty());
    if description.is_some_and(|d| d.chars().count() > DESCRIPTION_MAX) {
        return Err(bad(
            "input.description",
            format!("description must be at most {DESCRIPTION_MAX} characters"),
        ));
    }
    let target_tps = input.target_tps.map(|t| finite_at_least("input.targetTps", t, 0.0)).transpose()?;
    let parallelism = input.parallelism.unwrap_or(1);
    if !(1..=MAX_PARALLELISM).contains(&parallelism) {
        return Err(bad("input.parallelism", format!("parallelism must be between 1 and {MAX_PARALLELISM}")));
    }
    if input.scenarios.is_empty() {
        return Err(bad("input.scenarios", "a load test needs at least one scenario"));
    }
    if input.scenarios.len() > MAX_SCENARIOS {
        return Err(bad("input.scenarios", format!("at most {MAX_SCENARIOS} scenarios per test")));
    }

    let ids = endpoint_ids(input);
    let mut project_id = input.project_id;
    let mut names = HashSet::new();
    let mut scenarios = Vec::with_capacity(input.scenarios.len());
    for (index, (scenario, endpoint_id)) in input.scenarios.iter().zip(ids).enumerate() {
        let at = format!("scenarios[{index}]");
        let scenario_name = scenario.name.trim();
        let endpoint = match endpoints.iter().find(|e| e.endpoint.id == endpoint_id) {
            Some(found) if found.endpoint.removed_at.is_none() => found,
            Some(removed) => {
                let removed = &removed.endpoint;
                return Err(bad(
                    format!("{at}.endpointId"),
                    format!(
                        "scenario `{scenario_name}`: endpoint {endpoint_id} ({} {}) was removed by a re-import of its document; point the scenario at an endpoint that exists",
                        sea_orm::ActiveEnum::to_value(&removed.method),
                        removed.path
                    ),
                ));
            }
            None => {
                return Err(bad(
                    format!("{at}.endpointId"),
                    format!(
                        "scenario `{scenario_name}`: endpoint {endpoint_id} does not exist (deleted with its document, or removed by a re-import of it)"
                    ),
                ));
            }
        };
        match project_id {
            Some(project) if project != endpoint.endpoint.project_id => {
                return Err(bad(
                    format!("{at}.endpointId"),
                    format!(
                        "endpoint {endpoint_id} belongs to another project; all scenarios of a test must share one project"
                    ),
                ));
            }
            _ => project_id = Some(endpoint.endpoint.project_id),
        }
        let name = scenario.name.trim();
        if name.chars().any(char::is_control) {
            return Err(bad(
                format!("{at}.name"),
                "a scenario name is one line of text: no control characters (line breaks, escapes)",
            ));
        }
        if name.is_empty() || name.chars().count() > NAME_MAX {
            return Err(bad(
                format!("{at}.name"),
                format!("a scenario name must be 1 to {NAME_MAX} characters"),
            ));
        }
        if !names.insert(name.to_lowercase()) {
            return Err(bad(format!("{at}.name"), format!("scenario name `{name}` is used twice")));
        }
        scenarios.push(validate_scenario(scenario, index, name, endpoint, &at, limits)?);
    }

    budget::check_load_budget(&scenarios, limits.budget)?;

    let runner = input.runner.unwrap_or(limits.default_runner);
    Ok(ValidatedLaunch {
        project_id: project_id.expect("at least one scenario sets the project"),
        title: title.to_owned(),
        description: description.map(str::to_owned),
        target_tps,
        runner,
        parallelism: parallelism as u32,
        scenarios,
    })
}

fn validate_scenario(
    scenario: &ScenarioRequest,
    index: usize,
    name: &str,
    endpoint: &LaunchEndpoint,
    at: &str,
    limits: LaunchLimits,
) -> AppResult<ValidatedScenario> {
    let executor = scenario.executor;
    let constant = matches!(executor, Executor::ConstantVus | Executor::ConstantArrivalRate);
    match (constant, scenario.stages.len()) {
        (true, 1) => {}
        (true, _) => {
            return Err(bad(format!("{at}.stages"), format!("{executor:?} takes exactly one stage")));
        }
        (false, 0) => {
            return Err(bad(format!("{at}.stages"), format!("{executor:?} needs at least one stage")));
        }
        (false, n) if n > MAX_STAGES => {
            return Err(bad(format!("{at}.stages"), format!("at most {MAX_STAGES} stages")));
        }
        _ => {}
    }
    let mut stages = Vec::with_capacity(scenario.stages.len());
    let mut total = Duration::ZERO;
    for (i, stage) in scenario.stages.iter().enumerate() {
        let field = format!("{at}.stages[{i}]");
        let duration = parse_k6_duration(stage.duration.trim())
            .map_err(|e| bad(format!("{field}.duration"), e.to_string()))?;
        if constant && duration < MIN_CONSTANT_DURATION {
            return Err(bad(format!("{field}.duration"), "a constant executor must run for at least 1s"));
        }
        if stage.target < 0 || (constant && stage.target == 0) {
            let floor = if constant { 1 } else { 0 };
            return Err(bad(format!("{field}.target"), format!("target must be at least {floor}")));
        }
        total += duration;
        stages.push(StagePlan { duration: stage.duration.trim().to_owned(), target: stage.target as u32 });
    }
    if stages.iter().all(|s| s.target == 0) {
        return Err(bad(
            format!("{at}.stages"),
            "every stage has target 0, so the scenario would send nothing",
        ));
    }
    if total > limits.max_test_duration {
        return Err(bad(
            format!("{at}.stages"),
            format!(
                "the stages last {}s, longer than the limit of {}s (SCHEDULER_JOB_TIMEOUT_HOURS)",
                total.as_secs(),
                limits.max_test_duration.as_secs()
            ),
        ));
    }
    let think_time = finite_at_least(&format!("{at}.thinkTime"), scenario.think_time.unwrap_or(1.0), 0.0)?;
    if think_time > MAX_THINK_TIME {
        return Err(bad(
            format!("{at}.thinkTime"),
            format!("thinkTime must be at most {MAX_THINK_TIME} seconds"),
        ));
    }
    let response_time_target = scenario
        .response_time_target
        .map(|t| finite_at_least(&format!("{at}.responseTimeTarget"), t, 0.0))
        .transpose()?;
    let error_rate_target = scenario
        .error_rate_target
        .map(|t| finite_at_least(&format!("{at}.errorRateTarget"), t, 0.0))
        .transpose()?;
    if error_rate_target.is_some_and(|t| t > 100.0) {
        return Err(bad(
            format!("{at}.errorRateTarget"),
            "errorRateTarget is a percentage between 0 and 100",
        ));
    }
    let (pre_allocated_vus, max_vus) = match (executor.is_arrival_rate(), scenario.max_vus) {
        (false, Some(_)) => {
            return Err(bad(format!("{at}.maxVus"), "maxVus applies to the arrival-rate executors only"));
        }
        (_, Some(max)) if max < 1 => return Err(bad(format!("{at}.maxVus"), "maxVus must be at least 1")),
        (_, Some(max)) if max as u32 > limits.budget.max_vus => {
            return Err(bad(
                format!("{at}.maxVus"),
                format!(
                    "scenario `{name}` asks for maxVus {max}, over the limit of {} VUs per test (MAX_VUS_PER_TEST)",
                    limits.budget.max_vus
                ),
            ));
        }
        (true, max) => {
            let (pre, max) = arrival_rate_vus(&stages, think_time, max.map(|m| m as u32));
            // A derived pool never passes the budget on its own; an explicit one was checked above.
            let max = max.min(limits.budget.max_vus);
            (Some(pre.min(max)), Some(max))
        }
        (false, None) => (None, None),
    };
    let request = request_plan(scenario.request.as_ref(), endpoint, at)?;
    Ok(ValidatedScenario {
        endpoint_id: endpoint.endpoint.id,
        max_vus: scenario.max_vus,
        request: scenario.request.as_ref().map(request_json),
        plan: ScenarioPlan {
            key: scenario_key(name, index),
            display_name: name.to_owned(),
            executor,
            stages,
            think_time,
            pre_allocated_vus,
            max_vus,
            response_time_target,
            error_rate_target,
            request,
        },
    })
}
