//! The vocabulary shared by every layer: methods, statuses, runners, executors, roles, and the
//! value types the database stores and the layers above compute (counts, integrity, the
//! catalogue's model of a document). It depends on no other module of the crate.
//!
//! These enums are stored as their SCREAMING_CASE names and exposed with the same
//! names in GraphQL, so one definition serves both; they change together or not at all.

pub mod counts;
pub mod integrity;
pub mod regression;
mod role;
pub mod spec;
pub mod webhook;

use std::{fmt, str::FromStr};

pub use role::Role;

use async_graphql::Enum;
use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};

/// The eight HTTP methods an OpenAPI operation can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Enum, DeriveActiveEnum, EnumIter, serde::Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
pub enum HttpMethod {
    #[sea_orm(string_value = "GET")]
    Get,
    #[sea_orm(string_value = "PUT")]
    Put,
    #[sea_orm(string_value = "POST")]
    Post,
    #[sea_orm(string_value = "DELETE")]
    Delete,
    #[sea_orm(string_value = "OPTIONS")]
    Options,
    #[sea_orm(string_value = "HEAD")]
    Head,
    #[sea_orm(string_value = "PATCH")]
    Patch,
    #[sea_orm(string_value = "TRACE")]
    Trace,
}

/// Where a parameter travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Enum, DeriveActiveEnum, EnumIter, serde::Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
pub enum ParameterLocation {
    #[sea_orm(string_value = "PATH")]
    Path,
    #[sea_orm(string_value = "QUERY")]
    Query,
    #[sea_orm(string_value = "HEADER")]
    Header,
    #[sea_orm(string_value = "COOKIE")]
    Cookie,
}

impl HttpMethod {
    /// All methods in the order the OpenAPI specification lists them in a path item,
    /// which is also the order endpoints of one path are reported in.
    pub const ALL: [HttpMethod; 8] = [
        HttpMethod::Get,
        HttpMethod::Put,
        HttpMethod::Post,
        HttpMethod::Delete,
        HttpMethod::Options,
        HttpMethod::Head,
        HttpMethod::Patch,
        HttpMethod::Trace,
    ];

    /// Upper-case name, e.g. "GET".
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Put => "PUT",
            HttpMethod::Post => "POST",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Head => "HEAD",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Trace => "TRACE",
        }
    }

    /// The key this method has in a path item, e.g. "get".
    pub fn path_item_key(self) -> &'static str {
        match self {
            HttpMethod::Get => "get",
            HttpMethod::Put => "put",
            HttpMethod::Post => "post",
            HttpMethod::Delete => "delete",
            HttpMethod::Options => "options",
            HttpMethod::Head => "head",
            HttpMethod::Patch => "patch",
            HttpMethod::Trace => "trace",
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a method or location name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownName {
    kind: &'static str,
    value: String,
}

impl FromStr for HttpMethod {
    type Err = UnknownName;

    /// Accepts any letter case, since both "GET" (HTTP) and "get" (OpenAPI) are common.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        HttpMethod::ALL
            .into_iter()
            .find(|method| method.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| UnknownName { kind: "HTTP method", value: text.to_owned() })
    }
}

impl ParameterLocation {
    /// The `in` value OpenAPI uses, e.g. "path".
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterLocation::Path => "path",
            ParameterLocation::Query => "query",
            ParameterLocation::Header => "header",
            ParameterLocation::Cookie => "cookie",
        }
    }
}

impl fmt::Display for ParameterLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ParameterLocation {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Self::Path, Self::Query, Self::Header, Self::Cookie]
            .into_iter()
            .find(|location| location.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| UnknownName { kind: "parameter location", value: text.to_owned() })
    }
}

/// The life of a run: `PENDING → RUNNING → COMPLETED | FAILED | CANCELLED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Enum, DeriveActiveEnum, EnumIter, serde::Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum TestStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "RUNNING")]
    Running,
    #[sea_orm(string_value = "COMPLETED")]
    Completed,
    #[sea_orm(string_value = "FAILED")]
    Failed,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

impl TestStatus {
    /// The statuses of a run that still has processes or pods behind it.
    pub const ACTIVE: [TestStatus; 2] = [TestStatus::Pending, TestStatus::Running];

    /// Pending or running: the run still has processes or pods behind it.
    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }
}

/// Where k6 runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Enum, DeriveActiveEnum, EnumIter, serde::Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum RunnerKind {
    #[sea_orm(string_value = "LOCAL")]
    Local,
    #[sea_orm(string_value = "KUBERNETES")]
    Kubernetes,
}

/// The k6 executors Metric Vault offers.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Enum,
    DeriveActiveEnum,
    EnumIter,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum Executor {
    #[sea_orm(string_value = "CONSTANT_VUS")]
    ConstantVus,
    #[sea_orm(string_value = "RAMPING_VUS")]
    RampingVus,
    #[sea_orm(string_value = "CONSTANT_ARRIVAL_RATE")]
    ConstantArrivalRate,
    #[sea_orm(string_value = "RAMPING_ARRIVAL_RATE")]
    RampingArrivalRate,
}

impl Executor {
    /// The executor's name in k6 options, e.g. `"constant-vus"`.
    pub fn as_k6(self) -> &'static str {
        match self {
            Self::ConstantVus => "constant-vus",
            Self::RampingVus => "ramping-vus",
            Self::ConstantArrivalRate => "constant-arrival-rate",
            Self::RampingArrivalRate => "ramping-arrival-rate",
        }
    }

    /// Whether stage targets are iterations per second (open model) rather than VUs.
    pub fn is_arrival_rate(self) -> bool {
        matches!(self, Self::ConstantArrivalRate | Self::RampingArrivalRate)
    }
}

/// Whether a run or scenario met its targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Enum)]
pub enum Verdict {
    Passed,
    Failed,
    Unknown,
}

/// The summary metrics, listed once, in the order the API shows them: Rust name, database
/// column, type. Every place that handles them all is written from this list: the
/// [`MetricSummary`] type, the entities' summary columns and their conversions
/// (`db::entities`), the by-index decoding (`db::repo::history`) and the board's eager answer
/// (`graphql::fast::board`). `summary_metrics!(callback, [args])` calls `callback! { [args]
/// name Column type, … }`.
macro_rules! summary_metrics {
    ($callback:path $(, [$($args:tt)*])?) => {
        $callback! { [$($($args)*)?]
            total_requests TotalRequests i64,
            failed_requests FailedRequests i64,
            test_duration TestDuration f64,
            max_tps MaxTps f64,
            min_tps MinTps f64,
            avg_tps AvgTps f64,
            max_response_time MaxResponseTime f64,
            min_response_time MinResponseTime f64,
            avg_response_time AvgResponseTime f64,
            p50_response_time P50ResponseTime f64,
            p95_response_time P95ResponseTime f64,
            p99_response_time P99ResponseTime f64,
            max_error_rate MaxErrorRate f64,
            min_error_rate MinErrorRate f64,
            avg_error_rate AvgErrorRate f64,
            max_vus MaxVus f64,
            min_vus MinVus f64,
            avg_vus AvgVus f64,
        }
    };
}
pub(crate) use summary_metrics;

macro_rules! metric_summary_type {
    ([] $($name:ident $column:ident $type:ty,)*) => {
        /// A run's (or a scenario's) measured figures. Times in ms, rates per second, error rates in percent.
        #[derive(Clone, Debug, PartialEq, async_graphql::SimpleObject)]
        pub struct MetricSummary {
            $(pub $name: $type,)*
        }
    };
}
summary_metrics!(metric_summary_type);

/// A scenario passes when its p95 and error rate are within the targets it has.
/// Without targets, or before its summary is known, the verdict is `Unknown`.
pub fn scenario_verdict(
    summary: Option<&MetricSummary>,
    response_time_target: Option<f64>,
    error_rate_target: Option<f64>,
) -> Verdict {
    let Some(summary) = summary else {
        return Verdict::Unknown;
    };
    if response_time_target.is_none() && error_rate_target.is_none() {
        return Verdict::Unknown;
    }
    let p95_ok = response_time_target.is_none_or(|target| summary.p95_response_time <= target);
    let errors_ok = error_rate_target.is_none_or(|target| summary.avg_error_rate <= target);
    if p95_ok && errors_ok { Verdict::Passed } else { Verdict::Failed }
}

/// A run's verdict: judged ([`test_verdict`]) only once it has COMPLETED. A run that FAILED or
/// was CANCELLED did not run its plan, so its figures cannot pass or fail its targets: `Unknown`.
pub fn run_verdict(
    status: TestStatus,
    summary: Option<&MetricSummary>,
    target_tps: Option<f64>,
    scenario_verdicts: impl IntoIterator<Item = Verdict>,
) -> Verdict {
    match (status, summary) {
        (TestStatus::Failed | TestStatus::Cancelled, _) | (_, None) => Verdict::Unknown,
        (_, summary) => test_verdict(summary, target_tps, scenario_verdicts),
    }
}

/// A run fails when any scenario failed or its average TPS stayed under `target_tps`;
/// it passes when everything that had a target met it; otherwise it is `Unknown`.
pub fn test_verdict(
    summary: Option<&MetricSummary>,
    target_tps: Option<f64>,
    scenario_verdicts: impl IntoIterator<Item = Verdict>,
) -> Verdict {
    let mut judged = false;
    for verdict in scenario_verdicts {
        match verdict {
            Verdict::Failed => return Verdict::Failed,
            Verdict::Passed => judged = true,
            Verdict::Unknown => {}
        }
    }
    if let (Some(target), Some(summary)) = (target_tps, summary) {
        if summary.avg_tps < target {
            return Verdict::Failed;
        }
        judged = true;
    }
    if judged { Verdict::Passed } else { Verdict::Unknown }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(p95: f64, error_rate: f64, avg_tps: f64) -> MetricSummary {
        MetricSummary {
            total_requests: 100,
            failed_requests: 0,
            test_duration: 10.0,
            max_tps: avg_tps,
            min_tps: avg_tps,
            avg_tps,
            max_response_time: p95,
            min_response_time: 1.0,
            avg_response_time: p95 / 2.0,
            p50_response_time: p95 / 2.0,
            p95_response_time: p95,
            p99_response_time: p95,
            max_error_rate: error_rate,
            min_error_rate: error_rate,
            avg_error_rate: error_rate,
            max_vus: 1.0,
            min_vus: 1.0,
            avg_vus: 1.0,
        }
    }

    #[test]
    fn scenario_verdict_follows_its_targets() {
        let s = summary(120.0, 2.0, 50.0);
        assert_eq!(scenario_verdict(Some(&s), Some(150.0), Some(5.0)), Verdict::Passed);
        assert_eq!(scenario_verdict(Some(&s), Some(100.0), None), Verdict::Failed);
        assert_eq!(scenario_verdict(Some(&s), None, Some(1.0)), Verdict::Failed);
        assert_eq!(scenario_verdict(Some(&s), None, None), Verdict::Unknown);
        assert_eq!(scenario_verdict(None, Some(150.0), None), Verdict::Unknown);
    }

    #[test]
    fn test_verdict_fails_on_any_failure_or_low_tps() {
        let s = summary(120.0, 0.0, 50.0);
        assert_eq!(test_verdict(Some(&s), None, [Verdict::Passed, Verdict::Unknown]), Verdict::Passed);
        assert_eq!(test_verdict(Some(&s), None, [Verdict::Passed, Verdict::Failed]), Verdict::Failed);
        assert_eq!(test_verdict(Some(&s), Some(60.0), [Verdict::Passed]), Verdict::Failed);
        assert_eq!(test_verdict(Some(&s), Some(40.0), [Verdict::Unknown]), Verdict::Passed);
        assert_eq!(test_verdict(None, Some(40.0), [Verdict::Unknown]), Verdict::Unknown);
    }

    #[test]
    fn only_a_completed_run_is_judged() {
        let s = summary(120.0, 0.0, 50.0);
        let judged = |status| run_verdict(status, Some(&s), None, [Verdict::Passed]);
        assert_eq!(judged(TestStatus::Completed), Verdict::Passed);
        assert_eq!(judged(TestStatus::Failed), Verdict::Unknown, "it did not run its plan");
        assert_eq!(judged(TestStatus::Cancelled), Verdict::Unknown);
        assert_eq!(run_verdict(TestStatus::Completed, None, None, [Verdict::Passed]), Verdict::Unknown);
    }
}

/// Serde for the enums above by their stored (and GraphQL) names, e.g. `"CONSTANT_VUS"`:
/// `#[serde(with = "crate::domain::by_name")]`, or `by_name::option` for an `Option`.
pub mod by_name {
    use sea_orm::ActiveEnum;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<E: ActiveEnum<Value = String>, S: Serializer>(
        value: &E,
        to: S,
    ) -> Result<S::Ok, S::Error> {
        to.serialize_str(&value.to_value())
    }

    pub fn deserialize<'de, E: ActiveEnum<Value = String>, D: Deserializer<'de>>(
        from: D,
    ) -> Result<E, D::Error> {
        let name = String::deserialize(from)?;
        E::try_from_value(&name).map_err(|_| D::Error::custom(format!("unknown value `{name}`")))
    }

    /// The same for an optional value (`null` when absent).
    pub mod option {
        use super::*;

        pub fn serialize<E: ActiveEnum<Value = String>, S: Serializer>(
            value: &Option<E>,
            to: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => super::serialize(value, to),
                None => to.serialize_none(),
            }
        }

        pub fn deserialize<'de, E: ActiveEnum<Value = String>, D: Deserializer<'de>>(
            from: D,
        ) -> Result<Option<E>, D::Error> {
            let name = Option::<String>::deserialize(from)?;
            name.map(|name| {
                E::try_from_value(&name).map_err(|_| D::Error::custom(format!("unknown value `{name}`")))
            })
            .transpose()
        }
    }
}

/// What one due time of a schedule did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Enum, DeriveActiveEnum, EnumIter, serde::Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum FiringOutcome {
    /// A run was launched.
    #[sea_orm(string_value = "LAUNCHED")]
    Launched,
    /// A run of the plan was still active, so none was launched.
    #[sea_orm(string_value = "SKIPPED_OVERLAP")]
    SkippedOverlap,
    /// Every server was down at the due time and SCHEDULE_MISSED_RUNS is `skip`.
    #[sea_orm(string_value = "SKIPPED_MISSED")]
    SkippedMissed,
    /// The launch was refused (the error is in `message`).
    #[sea_orm(string_value = "FAILED")]
    Failed,
}
