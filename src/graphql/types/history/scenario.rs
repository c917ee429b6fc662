//! One scenario of a run, and its stages.

use async_graphql::{Context, ID, Json, Result, SimpleObject};

use super::{
    super::{
        catalogue::{Endpoint, required},
        integrity::RunTotals,
        loader, to_id,
    },
    TestHistory, run_by_id, sees_secrets, visible_request,
};
use crate::{
    access::Principal,
    db::entities::{HasMetrics, scenario_history, stage_history},
    domain::{Executor, MetricSummary, Verdict, scenario_verdict},
    graphql::{
        fast::plain::graphql_object,
        loaders::{EndpointById, StagesOf},
    },
};

/// One scenario of a run, against one endpoint.
pub struct ScenarioHistory(pub scenario_history::Model);

impl ScenarioHistory {
    pub(in crate::graphql) fn verdict_of(row: &scenario_history::Model) -> Verdict {
        scenario_verdict(row.metrics().as_ref(), row.response_time_target, row.error_rate_target)
    }
}

graphql_object! {
    impl ScenarioHistory as this {
        plain id: ID = to_id(this.0.id);
        async fn test_history(&self, ctx: &Context<'_>) -> Result<TestHistory> {
            Ok(TestHistory(run_by_id(ctx, self.0.test_history_id).await?))
        }
        plain name: String = this.0.name.clone();
        /// The tag value k6 writes as `scenario` on every sample of this scenario.
        plain scenario_tag: String = this.0.scenario_tag.clone();
        async fn endpoint(&self, ctx: &Context<'_>) -> Result<Endpoint> {
            let endpoint = loader(ctx).load_one(EndpointById(self.0.endpoint_id)).await?;
            Ok(Endpoint::from(required(endpoint, "endpoint", self.0.endpoint_id)?))
        }
        plain executor: Executor = this.0.executor;
        plain think_time: f64 = this.0.think_time;
        plain response_time_target: Option<f64> = this.0.response_time_target;
        plain error_rate_target: Option<f64> = this.0.error_rate_target;
        /// The request values the launch gave (`pathParams`, `queryParams`, `headers`, `body`,
        /// `secretHeaders`); null when it gave none. Below OPERATOR, secret header values read `***`.
        async fn request(&self, ctx: &Context<'_>) -> Option<Json<serde_json::Value>> {
            visible_request(&self.0, sees_secrets(ctx.data_opt::<Principal>()))
        }
        async fn stages(&self, ctx: &Context<'_>) -> Result<Vec<Stage>> {
            let stages = loader(ctx).load_one(StagesOf::Scenario(self.0.id)).await?.unwrap_or_default();
            Ok(stages.into_iter().map(Stage::from).collect())
        }
        /// Figures from the scenario's samples in InfluxDB, with k6's own counts when `totals` has them.
        async fn summary(&self) -> Option<MetricSummary> {
            self.0.metrics()
        }
        /// What k6 itself counted for this scenario (its `scenario` sub-metrics), summed over the
        /// instances; null when an instance did not report them.
        async fn totals(&self) -> Option<RunTotals> {
            RunTotals::of(&self.0)
        }
        plain verdict: Verdict = Self::verdict_of(&this.0);
    }
}

/// One stage of a scenario: ramp to `target` over `duration`.
#[derive(SimpleObject)]
pub struct Stage {
    pub(in crate::graphql) id: ID,
    pub(in crate::graphql) duration: String,
    pub(in crate::graphql) target: i32,
}

impl From<stage_history::Model> for Stage {
    fn from(row: stage_history::Model) -> Self {
        Self { id: to_id(row.id), duration: row.duration, target: row.target }
    }
}
