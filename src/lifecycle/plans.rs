//! Saved test plans in the run's life: a plan is saved only when it would launch, launched
//! by id (its current version), and any run can be run again as it ran.
//!
//! A plan's definition is its [`LaunchRequest`] as JSON (`LaunchLoadTestInput`'s field names),
//! secret header values included; readers below OPERATOR get [`masked_definition`].

use serde_json::Value;

use super::{
    Lifecycle,
    launch::{
        LaunchRequest, RequestValues, ScenarioRequest, StageRequest, ValidatedLaunch, mask_secret_headers,
    },
};
use crate::{
    db::{
        entities::{test_history, test_plan},
        repo,
    },
    error::{AppError, AppResult},
};

/// Live plans one project may have.
pub const MAX_PLANS_PER_PROJECT: u64 = 500;

/// Where a launch comes from, and so which plan its run is linked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A one-off run.
    OneOff,
    /// A one-off run whose input is saved as a new plan in the same transaction.
    SaveAsPlan,
    /// A version of a saved plan; `exclusive` (a schedule's launch): refused with `CONFLICT`
    /// while a run of the plan is active.
    Plan { id: i64, version: i32, exclusive: bool },
}

/// The definition stored for a validated input: the input with its project made explicit and
/// its title as validated.
pub fn definition(input: &LaunchRequest, validated: &ValidatedLaunch) -> String {
    let stored = LaunchRequest {
        project_id: Some(validated.project_id),
        title: validated.title.clone(),
        ..input.clone()
    };
    serde_json::to_string(&stored).expect("a launch request is JSON")
}

/// A stored definition read back.
pub fn parse_definition(definition: &str) -> AppResult<LaunchRequest> {
    serde_json::from_str(definition).map_err(|err| {
        AppError::Unexpected(anyhow::anyhow!("a stored plan definition does not parse: {err}"))
    })
}

/// A definition as JSON with every secret header value replaced by `***`.
pub fn masked_definition(definition: &str) -> Value {
    let mut value: Value = serde_json::from_str(definition).unwrap_or(Value::Null);
    if let Some(scenarios) = value.get_mut("scenarios").and_then(Value::as_array_mut) {
        for scenario in scenarios {
            if let Some(request) = scenario.get_mut("request").filter(|r| r.is_object()) {
                *request = mask_secret_headers(request);
            }
        }
    }
    value
}

impl Lifecycle {
    /// Saves `input` as a new plan after every check a launch would make.
    pub async fn save_plan(&self, input: LaunchRequest) -> AppResult<test_plan::Model> {
        let validated = self.check_launch(&input).await?;
        if repo::plans::count_live(&self.db, validated.project_id).await? >= MAX_PLANS_PER_PROJECT {
            return Err(AppError::bad_input(
                "input.projectId",
                format!(
                    "project {} already has {MAX_PLANS_PER_PROJECT} test plans, the most it may have",
                    validated.project_id
                ),
            ));
        }
        repo::plans::create(&self.db, validated.project_id, &validated.title, &definition(&input, &validated))
            .await
    }

    /// Saves `input` as the next version of plan `id`.
    pub async fn edit_plan(
        &self,
        id: i64,
        expected_version: Option<i32>,
        input: LaunchRequest,
    ) -> AppResult<test_plan::Model> {
        repo::plans::live(&self.db, id).await?;
        let validated = self.check_launch(&input).await?;
        let definition = definition(&input, &validated);
        repo::plans::update(
            &self.db,
            id,
            expected_version,
            validated.project_id,
            &validated.title,
            &definition,
        )
        .await
    }

    /// Launches the current version of a live plan.
    pub async fn launch_plan(&self, id: i64) -> AppResult<test_history::Model> {
        self.launch_current(id, false).await
    }

    /// [`Lifecycle::launch_plan`], unless a run of the plan is active (`CONFLICT`), checked
    /// atomically with the run's record.
    pub async fn launch_plan_exclusively(&self, id: i64) -> AppResult<test_history::Model> {
        self.launch_current(id, true).await
    }

    async fn launch_current(&self, id: i64, exclusive: bool) -> AppResult<test_history::Model> {
        let plan = repo::plans::live(&self.db, id).await?;
        let version = repo::plans::version(&self.db, id, plan.current_version).await?;
        let input = parse_definition(&version.definition)?;
        self.launch_as(input, Origin::Plan { id, version: version.version, exclusive }).await
    }

    /// Launches what run `id` ran, again: its plan version when it had one and the plan is
    /// still live (so the new run counts in the plan's trend), else its own recorded input.
    pub async fn rerun(&self, id: i64) -> AppResult<test_history::Model> {
        let run = repo::runs::get(&self.db, id).await?;
        let input = self.request_of_run(&run).await?;
        let origin = match (run.plan_id, run.plan_version) {
            (Some(plan), Some(version)) if repo::plans::live(&self.db, plan).await.is_ok() => {
                Origin::Plan { id: plan, version, exclusive: false }
            }
            _ => Origin::OneOff,
        };
        self.launch_as(input, origin).await
    }

    /// The launch input a run was recorded with.
    async fn request_of_run(&self, run: &test_history::Model) -> AppResult<LaunchRequest> {
        let scenarios = repo::runs::scenarios_with_stages(&self.db, run.id).await?;
        let scenarios = scenarios
            .into_iter()
            .map(|(scenario, stages)| {
                let request =
                    scenario.request.map(serde_json::from_value::<RequestValues>).transpose().map_err(
                        |err| {
                            AppError::Unexpected(anyhow::anyhow!(
                                "run {}'s request does not parse: {err}",
                                run.id
                            ))
                        },
                    )?;
                Ok(ScenarioRequest {
                    name: scenario.name,
                    endpoint_id: scenario.endpoint_id,
                    executor: scenario.executor,
                    think_time: Some(scenario.think_time),
                    stages: stages
                        .into_iter()
                        .map(|stage| StageRequest { duration: stage.duration, target: stage.target })
                        .collect(),
                    max_vus: scenario.max_vus_limit,
                    response_time_target: scenario.response_time_target,
                    error_rate_target: scenario.error_rate_target,
                    request,
                })
            })
            .collect::<AppResult<_>>()?;
        Ok(LaunchRequest {
            project_id: Some(run.project_id),
            title: run.title.clone(),
            description: run.description.clone(),
            target_tps: run.target_tps,
            runner: Some(run.runner),
            parallelism: Some(run.parallelism),
            scenarios,
        })
    }
}
