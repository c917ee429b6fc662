//! TestComparison, ScenarioComparison: two finished runs side by side.
//!
//! Scenarios are paired by what they load-tested, so a renamed scenario still meets its
//! earlier self: first the same endpoint and the same name, then the same endpoint, then
//! the same name among those left. A scenario without a partner appears alone, with the
//! other side null.

use async_graphql::{Context, Object, Result, SimpleObject};

use super::{catalogue::Endpoint, history::TestHistory, loader};
use crate::{
    db::entities::{HasMetrics, scenario_history, test_history},
    domain::{MetricSummary, TestStatus},
    error::AppError,
    graphql::loaders::{EndpointById, ScenariosOfRun, TestHistoryById},
};

/// Two finished runs, scenario by scenario.
#[derive(SimpleObject)]
pub struct TestComparison {
    base: TestHistory,
    candidate: TestHistory,
    scenarios: Vec<ScenarioComparison>,
}

impl TestComparison {
    /// Loads both runs and their scenarios (through the request's loaders) and pairs them.
    /// An unknown id is `NOT_FOUND`; a run without results yet is `BAD_USER_INPUT`.
    pub async fn load(ctx: &Context<'_>, base_id: i64, candidate_id: i64) -> Result<Self> {
        let runs = loader(ctx).load_many([TestHistoryById(base_id), TestHistoryById(candidate_id)]).await?;
        // The same id on both sides is allowed: a run compared with itself changes by 0.
        let finished_run = |id: i64, field: &str| match runs.get(&TestHistoryById(id)) {
            Some(run) => check_finished(run.clone(), field),
            None => Err(AppError::not_found("TestHistory", id).into()),
        };
        let base = finished_run(base_id, "baseId")?;
        let candidate = finished_run(candidate_id, "candidateId")?;

        let scenarios = loader(ctx)
            .load_many([ScenariosOfRun::rows(base_id), ScenariosOfRun::rows(candidate_id)])
            .await?;
        let scenarios_of = |id: i64| -> Vec<scenario_history::Model> {
            let rows = scenarios.get(&ScenariosOfRun::rows(id)).map(Vec::as_slice).unwrap_or_default();
            rows.iter().map(|(scenario, _)| scenario.clone()).collect()
        };
        let (base_scenarios, candidate_scenarios) = (scenarios_of(base_id), scenarios_of(candidate_id));
        let pairs = pair_scenarios(
            base_scenarios,
            candidate_scenarios,
            |scenario| scenario.endpoint_id,
            |scenario| scenario.name.as_str(),
        );
        Ok(Self {
            base: TestHistory(base),
            candidate: TestHistory(candidate),
            scenarios: pairs
                .into_iter()
                .map(|(base, candidate)| ScenarioComparison { base, candidate })
                .collect(),
        })
    }
}

/// A run that has ended and has a summary; otherwise a `BAD_USER_INPUT` naming it.
fn check_finished(run: test_history::Model, field: &str) -> Result<test_history::Model> {
    let message = match run.status {
        TestStatus::Pending | TestStatus::Running => format!(
            "test run {} is still {}; compare it once it has finished",
            run.id,
            if run.status == TestStatus::Pending { "PENDING" } else { "RUNNING" }
        ),
        _ if run.metrics().is_none() => {
            format!("test run {} has no results (no summary was recorded), so it cannot be compared", run.id)
        }
        _ => return Ok(run),
    };
    Err(AppError::bad_input(field, message).into())
}

/// One scenario of either run, with its partner in the other run if it has one.
pub struct ScenarioComparison {
    base: Option<scenario_history::Model>,
    candidate: Option<scenario_history::Model>,
}

impl ScenarioComparison {
    /// The candidate's side when there is one: what the scenario is now.
    fn current(&self) -> &scenario_history::Model {
        // `pair_scenarios` never makes a pair without either side.
        self.candidate.as_ref().or(self.base.as_ref()).expect("a pair has at least one side")
    }

    fn change(&self, figure: impl Fn(&MetricSummary) -> f64) -> Option<f64> {
        let value = |side: &Option<scenario_history::Model>| side.as_ref()?.metrics().map(|s| figure(&s));
        relative_change(value(&self.base), value(&self.candidate))
    }
}

#[Object]
impl ScenarioComparison {
    /// The candidate's name (the base's when only the base ran it).
    async fn name(&self) -> &str {
        &self.current().name
    }
    async fn endpoint(&self, ctx: &Context<'_>) -> Result<Option<Endpoint>> {
        let endpoint_id = self.current().endpoint_id;
        Ok(loader(ctx).load_one(EndpointById(endpoint_id)).await?.map(Endpoint::from))
    }
    async fn base(&self) -> Option<MetricSummary> {
        self.base.as_ref()?.metrics()
    }
    async fn candidate(&self) -> Option<MetricSummary> {
        self.candidate.as_ref()?.metrics()
    }
    /// candidate / base − 1, e.g. 0.12 = 12 % slower.
    async fn p95_response_time_change(&self) -> Option<f64> {
        self.change(|summary| summary.p95_response_time)
    }
    async fn avg_tps_change(&self) -> Option<f64> {
        self.change(|summary| summary.avg_tps)
    }
    async fn error_rate_change(&self) -> Option<f64> {
        self.change(|summary| summary.avg_error_rate)
    }
}

/// `candidate / base − 1`; None when either side is missing or the base is 0 (no ratio).
pub fn relative_change(base: Option<f64>, candidate: Option<f64>) -> Option<f64> {
    let (base, candidate) = (base?, candidate?);
    let change = candidate / base - 1.0;
    (base != 0.0 && change.is_finite()).then_some(change)
}

/// Pairs the scenarios of two runs: the same endpoint and name, then the same endpoint,
/// then the same name, each in launch order. The result follows the base's order, the
/// candidate's unpaired scenarios last.
pub fn pair_scenarios<T>(
    base: Vec<T>,
    candidate: Vec<T>,
    endpoint: impl Fn(&T) -> i64,
    name: impl Fn(&T) -> &str,
) -> Vec<(Option<T>, Option<T>)> {
    let mut partner: Vec<Option<usize>> = vec![None; base.len()];
    let mut taken = vec![false; candidate.len()];
    // (same endpoint required, same name required), strongest rule first.
    for (by_endpoint, by_name) in [(true, true), (true, false), (false, true)] {
        let matches =
            |b: &T, c: &T| (!by_endpoint || endpoint(b) == endpoint(c)) && (!by_name || name(b) == name(c));
        for (b, partner) in base.iter().zip(partner.iter_mut()).filter(|(_, partner)| partner.is_none()) {
            let found = candidate.iter().enumerate().find(|&(c, scenario)| !taken[c] && matches(b, scenario));
            if let Some((c, _)) = found {
                taken[c] = true;
                *partner = Some(c);
            }
        }
    }
    let mut candidate: Vec<Option<T>> = candidate.into_iter().map(Some).collect();
    let mut pairs: Vec<(Option<T>, Option<T>)> = base
        .into_iter()
        .zip(partner)
        .map(|(b, partner)| (Some(b), partner.and_then(|c| candidate[c].take())))
        .collect();
    pairs.extend(candidate.into_iter().flatten().map(|c| (None, Some(c))));
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (endpoint, name) of a scenario.
    type Seed = (i64, &'static str);

    fn pairs(base: &[Seed], candidate: &[Seed]) -> Vec<(Option<Seed>, Option<Seed>)> {
        pair_scenarios(base.to_vec(), candidate.to_vec(), |s| s.0, |s| s.1)
    }

    #[test]
    fn scenarios_pair_by_endpoint_first_even_when_renamed() {
        let paired = pairs(&[(1, "browse"), (2, "checkout")], &[(2, "pay"), (1, "browse")]);
        assert_eq!(
            paired,
            [(Some((1, "browse")), Some((1, "browse"))), (Some((2, "checkout")), Some((2, "pay")))]
        );
    }

    #[test]
    fn then_by_name_and_the_rest_stand_alone() {
        let paired = pairs(&[(1, "browse"), (2, "search"), (3, "old")], &[(4, "search"), (5, "new")]);
        assert_eq!(
            paired,
            [
                (Some((1, "browse")), None),
                (Some((2, "search")), Some((4, "search"))), // the endpoint moved; the name stayed
                (Some((3, "old")), None),
                (None, Some((5, "new"))),
            ]
        );
    }

    #[test]
    fn two_scenarios_on_one_endpoint_keep_their_names_apart() {
        // Endpoint first alone would pair "light" with "heavy" by order.
        let paired = pairs(&[(1, "light"), (1, "heavy")], &[(1, "heavy"), (1, "light")]);
        assert_eq!(
            paired,
            [(Some((1, "light")), Some((1, "light"))), (Some((1, "heavy")), Some((1, "heavy")))]
        );
        let uneven = pairs(&[(1, "a"), (1, "b")], &[(1, "c")]);
        assert_eq!(uneven, [(Some((1, "a")), Some((1, "c"))), (Some((1, "b")), None)]);
    }

    #[test]
    fn changes_are_relative_to_the_base_and_absent_without_a_ratio() {
        let slower = relative_change(Some(100.0), Some(112.0)).unwrap();
        assert!((slower - 0.12).abs() < 1e-12, "{slower}");
        assert_eq!(relative_change(Some(200.0), Some(100.0)), Some(-0.5));
        assert_eq!(relative_change(Some(3.0), Some(3.0)), Some(0.0));
        assert_eq!(relative_change(Some(0.0), Some(1.0)), None, "0 errors before: no ratio");
        assert_eq!(relative_change(Some(0.0), Some(0.0)), None);
        assert_eq!(relative_change(None, Some(1.0)), None);
        assert_eq!(relative_change(Some(1.0), None), None);
    }
}
