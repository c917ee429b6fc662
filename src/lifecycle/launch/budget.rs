//! The load budget of a launch: every scenario's VUs and rate counted together.

use super::{ValidatedScenario, bad};
use crate::{config::LoadBudget, error::AppResult};

/// Refuses a launch whose scenarios together ask for more than the budget, naming the
/// scenario that brings the total over.
///
/// Parallelism does not count: k6's execution segments split every scenario's VUs, rate and
/// VU pool across the instances, so the instances together send what the scenarios say.
pub(super) fn check_load_budget(scenarios: &[ValidatedScenario], budget: LoadBudget) -> AppResult<()> {
    let (mut vus, mut rate) = (0u64, 0u64);
    for (index, scenario) in scenarios.iter().enumerate() {
        let plan = &scenario.plan;
        let name = &plan.display_name;
        let peak = u64::from(plan.peak_target());
        let (scenario_vus, vus_field) = if plan.executor.is_arrival_rate() {
            rate += peak;
            if rate > u64::from(budget.max_rate) {
                return Err(bad(
                    format!("scenarios[{index}].stages"),
                    format!(
                        "scenario `{name}` brings the test to {rate} iterations/s, over the limit of {} per test \
                         (MAX_RATE_PER_TEST); lower its targets or split the load over several tests",
                        budget.max_rate
                    ),
                ));
            }
            (u64::from(plan.resolved_arrival_rate_vus().1), "maxVus")
        } else {
            (peak, "stages")
        };
        vus += scenario_vus;
        if vus > u64::from(budget.max_vus) {
            let what = if vus_field == "maxVus" { "its VU pool (maxVus)" } else { "its stage targets" };
            return Err(bad(
                format!("scenarios[{index}].{vus_field}"),
                format!(
                    "scenario `{name}` brings the test to {vus} VUs with {what}, over the limit of {} per test \
                     (MAX_VUS_PER_TEST)",
                    budget.max_vus
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k6::{Executor, RequestPlan, ScenarioPlan, StagePlan, scenario_key};

    fn scenario(
        name: &str,
        index: usize,
        executor: Executor,
        peak: u32,
        max_vus: Option<u32>,
    ) -> ValidatedScenario {
        ValidatedScenario {
            endpoint_id: 1,
            max_vus: None,
            request: None,
            plan: ScenarioPlan {
                key: scenario_key(name, index),
                display_name: name.to_owned(),
                executor,
                stages: vec![StagePlan { duration: "1s".to_owned(), target: peak }],
                think_time: 0.0,
                pre_allocated_vus: max_vus.map(|max| max.min(peak)),
                max_vus,
                response_time_target: None,
                error_rate_target: None,
                request: RequestPlan::get("http://127.0.0.1:1", "/"),
            },
        }
    }

    fn refusal(scenarios: &[ValidatedScenario], budget: LoadBudget) -> Option<(String, String)> {
        check_load_budget(scenarios, budget).err().map(|err| match err {
            crate::error::AppError::BadUserInput { field: Some(field), message } => (field, message),
            other => panic!("{other:?}"),
        })
    }

    const BUDGET: LoadBudget = LoadBudget { max_vus: 10, max_rate: 100 };

    #[test]
    fn the_budget_holds_up_to_its_limits_exactly() {
        let fits = [
            scenario("a", 0, Executor::ConstantVus, 4, None),
            scenario("b", 1, Executor::ConstantArrivalRate, 100, Some(6)),
        ];
        assert_eq!(refusal(&fits, BUDGET), None);
    }

    #[test]
    fn the_scenario_that_tips_a_total_over_is_named_with_the_limit_and_its_variable() {
        let vus = [
            scenario("a", 0, Executor::ConstantVus, 4, None),
            scenario("b", 1, Executor::RampingVus, 4, None),
            scenario("c", 2, Executor::RampingArrivalRate, 1, Some(3)),
        ];
        let (field, message) = refusal(&vus, BUDGET).unwrap();
        assert_eq!(field, "scenarios[2].maxVus");
        assert!(message.starts_with("scenario `c` brings the test to 11 VUs with its VU pool"), "{message}");
        assert!(message.contains("limit of 10 per test (MAX_VUS_PER_TEST)"), "{message}");

        let rate = [
            scenario("slow", 0, Executor::ConstantArrivalRate, 60, Some(1)),
            scenario("fast", 1, Executor::RampingArrivalRate, 41, Some(1)),
        ];
        let (field, message) = refusal(&rate, BUDGET).unwrap();
        assert_eq!(field, "scenarios[1].stages");
        assert!(message.contains("`fast` brings the test to 101 iterations/s"), "{message}");
        assert!(message.contains("(MAX_RATE_PER_TEST)"), "{message}");
    }

    #[test]
    fn absurd_targets_do_not_overflow_the_count() {
        let huge: Vec<ValidatedScenario> =
            (0..50).map(|i| scenario("x", i, Executor::ConstantVus, u32::MAX, None)).collect();
        let (field, _) = refusal(&huge, LoadBudget { max_vus: i32::MAX as u32, max_rate: 1 }).unwrap();
        assert_eq!(field, "scenarios[0].stages");
    }
}
