//! The validated, k6-shaped description of a load test that scripts are rendered from.
//!
//! GraphQL input is mapped into these types elsewhere; everything here is pure.

use serde::{Deserialize, Serialize};

pub use crate::domain::Executor;

/// One load test: everything needed to render its k6 script.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestPlan {
    /// The stored test's id.
    pub test_id: i64,
    /// The user's title (any text).
    pub title: String,
    /// Scenarios run in parallel, in display order.
    pub scenarios: Vec<ScenarioPlan>,
}

/// One k6 scenario: an executor, its load shape and the request each iteration sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioPlan {
    /// The k6 scenario name, which k6 also puts in the `scenario` tag of every
    /// sample; built by [`scenario_key`].
    pub key: String,
    /// The user's name for the scenario (any text).
    pub display_name: String,
    /// How load is generated.
    pub executor: Executor,
    /// Load shape; targets are VUs or iterations per second depending on the executor.
    pub stages: Vec<StagePlan>,
    /// Seconds to pause after each request; `0` for none.
    pub think_time: f64,
    /// Arrival-rate executors only; derived by [`arrival_rate_vus`] when absent.
    pub pre_allocated_vus: Option<u32>,
    /// Arrival-rate executors only; derived by [`arrival_rate_vus`] when absent.
    pub max_vus: Option<u32>,
    /// p95 `http_req_duration` limit in milliseconds.
    pub response_time_target: Option<f64>,
    /// `http_req_failed` limit in percent (0..100).
    pub error_rate_target: Option<f64>,
    /// The request each iteration sends.
    pub request: RequestPlan,
}

impl ScenarioPlan {
    /// The highest stage target: the VU count or rate of a constant executor.
    pub fn peak_target(&self) -> u32 {
        peak_target(&self.stages)
    }

    /// `(preAllocatedVUs, maxVUs)` for an arrival-rate executor: the user's values
    /// where given, [`arrival_rate_vus`] for the rest.
    ///
    /// `maxVUs` is raised to `preAllocatedVUs` when it is lower, because k6
    /// refuses that combination and an explicit preallocation is the clearer
    /// statement of intent.
    pub fn resolved_arrival_rate_vus(&self) -> (u32, u32) {
        let (derived_pre_allocated, max) = arrival_rate_vus(&self.stages, self.think_time, self.max_vus);
        let pre_allocated = self.pre_allocated_vus.unwrap_or(derived_pre_allocated);
        (pre_allocated, max.max(pre_allocated))
    }
}

/// One stage of a ramping executor, or the whole run of a constant one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagePlan {
    /// k6 duration syntax, already validated by [`super::duration::parse_k6_duration`].
    pub duration: String,
    /// VUs, or iterations per second for arrival-rate executors.
    pub target: u32,
}

/// The HTTP request a scenario sends on every iteration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPlan {
    /// HTTP method, e.g. `"GET"`.
    pub method: String,
    /// Server base URL, e.g. `"http://127.0.0.1:8080/api"`.
    pub base_url: String,
    /// OpenAPI path with `{name}` placeholders, e.g. `"/pets/{petId}"`.
    pub path_template: String,
    /// Values for the placeholders, already stringified, not yet percent-encoded.
    pub path_params: Vec<(String, String)>,
    /// Query parameters in order, not yet percent-encoded.
    pub query: Vec<(String, String)>,
    /// Request headers in order.
    pub headers: Vec<(String, String)>,
    /// Headers (any case) the launch marked secret, besides those [`is_secret_header`] names.
    pub secret_headers: Vec<String>,
    /// Request body, if any.
    pub body: Option<RequestBodyPlan>,
}

impl RequestPlan {
    /// A bare `GET base_url + path_template`, for tests.
    #[cfg(test)]
    pub(crate) fn get(base_url: &str, path_template: &str) -> Self {
        Self {
            method: "GET".to_owned(),
            base_url: base_url.to_owned(),
            path_template: path_template.to_owned(),
            path_params: vec![],
            query: vec![],
            headers: vec![],
            secret_headers: vec![],
            body: None,
        }
    }

    /// Whether the value of header `name` is a secret, kept out of the script.
    pub fn is_secret(&self, name: &str) -> bool {
        is_secret_header(name) || self.secret_headers.iter().any(|secret| secret.eq_ignore_ascii_case(name))
    }
}

/// Parts of a header name (any case) that make its value a credential: `Authorization`,
/// `Proxy-Authorization`, `Cookie`, `X-Api-Key`, `X-Auth-Token`, `X-Client-Secret`, ...
const SECRET_HEADER_PARTS: [&str; 6] = ["auth", "cookie", "token", "key", "secret", "password"];

/// Whether a header of this name carries a credential whatever the launch says.
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_HEADER_PARTS.iter().any(|part| name.contains(part))
}

/// A request body, already serialized.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestBodyPlan {
    /// Sent as `Content-Type` unless the headers already set one.
    pub content_type: String,
    /// JSON text, form-encoded text, or whatever `content_type` says.
    pub text: String,
}

/// Longest slug kept from a display name; long enough to recognise a scenario
/// in a dashboard legend, short enough to keep threshold names readable.
pub const MAX_SCENARIO_SLUG_LEN: usize = 40;

/// Builds the k6 scenario name for the scenario at `index` (its position in the plan).
///
/// k6 only accepts names matching `^[0-9a-zA-Z_-]+$`, so the key is
/// `<slug>_<index>`: the slug is the display name lowercased, with ASCII
/// letters and digits kept, each run of other characters turned into one `-`
/// (if the run was only dashes) or `_`, separators trimmed from both ends, and
/// cut to [`MAX_SCENARIO_SLUG_LEN`]. An empty slug becomes `scenario`.
///
/// The index is always appended, so keys are unique whenever indexes are, even
/// for equal or equally-slugged names (`Checkout!` and `checkout?`), and a
/// key stays the same when another scenario is renamed.
pub fn scenario_key(display_name: &str, index: usize) -> String {
    let mut slug = String::new();
    let mut pending_separator: Option<char> = None;
    for character in display_name.chars() {
        if character.is_ascii_alphanumeric() {
            if let Some(separator) = pending_separator.take()
                && !slug.is_empty()
            {
                slug.push(separator);
            }
            slug.push(character.to_ascii_lowercase());
        } else {
            let separator = if character == '-' { '-' } else { '_' };
            pending_separator = match pending_separator {
                Some('-') if separator == '-' => Some('-'),
                None if separator == '-' => Some('-'),
                _ => Some('_'),
            };
        }
    }
    slug.truncate(MAX_SCENARIO_SLUG_LEN);
    let slug = slug.trim_end_matches(['_', '-']);
    let slug = if slug.is_empty() { "scenario" } else { slug };
    format!("{slug}_{index}")
}

/// Whether k6 accepts `name` as a scenario name (`^[0-9a-zA-Z_-]+$`).
pub fn is_valid_k6_scenario_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Response time assumed per iteration when sizing VUs, before anything is measured.
/// Generous on purpose: running out of VUs drops iterations, spare VUs only cost memory.
pub const ASSUMED_RESPONSE_SECONDS: f64 = 0.5;

/// Derived `maxVUs` is this multiple of the expected need, to absorb latency spikes.
pub const DERIVED_MAX_VUS_HEADROOM: u32 = 2;

/// Derived `maxVUs` never goes below this, so small tests can ride out a slow server.
pub const MIN_DERIVED_MAX_VUS: u32 = 10;

/// Derived VU counts never exceed this; past it, k6 reports `dropped_iterations`
/// rather than exhausting the machine. An explicit `maxVUs` is not capped.
pub const DERIVED_VUS_CAP: u32 = 1_000;

/// Sizes the VU pool of an arrival-rate scenario: `(preAllocatedVUs, maxVUs)`.
///
/// By Little's law a rate of `R` iterations/s that each take `T` seconds keeps
/// `R × T` VUs busy. `R` is the peak stage target; `T` is the think time plus
/// [`ASSUMED_RESPONSE_SECONDS`]. That need, rounded up and at least 1, is
/// preallocated; `maxVUs` is [`DERIVED_MAX_VUS_HEADROOM`] times the need but
/// at least [`MIN_DERIVED_MAX_VUS`]; both are capped at [`DERIVED_VUS_CAP`].
///
/// With an explicit `max_vus` that value is used as is (at least 1, since k6
/// needs a VU to run anything) and the preallocation never exceeds it.
pub fn arrival_rate_vus(stages: &[StagePlan], think_time: f64, max_vus: Option<u32>) -> (u32, u32) {
    let think_time = if think_time.is_finite() && think_time > 0.0 { think_time } else { 0.0 };
    let iteration_seconds = think_time + ASSUMED_RESPONSE_SECONDS;
    // `as` saturates for floats, which is the behaviour wanted for absurd inputs.
    let needed = ((f64::from(peak_target(stages)) * iteration_seconds).ceil() as u32).max(1);
    match max_vus {
        Some(max_vus) => {
            let max_vus = max_vus.max(1);
            (needed.min(max_vus), max_vus)
        }
        None => {
            let pre_allocated = needed.min(DERIVED_VUS_CAP);
            let max =
                needed.saturating_mul(DERIVED_MAX_VUS_HEADROOM).clamp(MIN_DERIVED_MAX_VUS, DERIVED_VUS_CAP);
            (pre_allocated, max)
        }
    }
}

fn peak_target(stages: &[StagePlan]) -> u32 {
    stages.iter().map(|stage| stage.target).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(targets: &[u32]) -> Vec<StagePlan> {
        targets.iter().map(|&target| StagePlan { duration: "10s".to_owned(), target }).collect()
    }

    #[test]
    fn executor_names_match_k6() {
        assert_eq!(Executor::ConstantVus.as_k6(), "constant-vus");
        assert_eq!(Executor::RampingVus.as_k6(), "ramping-vus");
        assert_eq!(Executor::ConstantArrivalRate.as_k6(), "constant-arrival-rate");
        assert_eq!(Executor::RampingArrivalRate.as_k6(), "ramping-arrival-rate");
        assert!(Executor::RampingArrivalRate.is_arrival_rate());
        assert!(!Executor::RampingVus.is_arrival_rate());
    }

    #[test]
    fn scenario_keys_are_readable_slugs_with_the_index() {
        let cases = [
            ("Checkout", 0, "checkout_0"),
            ("Browse Pets (v2)", 3, "browse_pets_v2_3"),
            ("  log-in -- fast  ", 1, "log-in_fast_1"),
            ("a - b", 2, "a_b_2"),
            ("snake_case_name", 4, "snake_case_name_4"),
            ("Ünïcödé Flow", 5, "n_c_d_flow_5"),
            ("", 6, "scenario_6"),
            ("🚀🚀", 7, "scenario_7"),
            ("x'); import('k6/x/exec') //", 8, "x_import_k6_x_exec_8"),
        ];
        for (name, index, expected) in cases {
            assert_eq!(scenario_key(name, index), expected, "{name:?}");
        }
    }

    #[test]
    fn scenario_keys_are_valid_short_and_unique() {
        let long = "a very long scenario name that goes on and on and on";
        let key = scenario_key(long, 12);
        assert_eq!(key, "a_very_long_scenario_name_that_goes_on_a_12");
        assert!(key.len() <= MAX_SCENARIO_SLUG_LEN + 1 + 2);

        let names =
            ["Checkout!", "checkout?", "CHECKOUT", "", "-", "_", "x", "x_1", "a very long scenario name"];
        let keys: Vec<String> = names.iter().enumerate().map(|(i, n)| scenario_key(n, i)).collect();
        for key in &keys {
            assert!(is_valid_k6_scenario_name(key), "{key}");
        }
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "{keys:?}");
    }

    #[test]
    fn credential_headers_are_secret_by_name_and_others_when_marked() {
        for name in [
            "Authorization",
            "proxy-authorization",
            "COOKIE",
            "X-Api-Key",
            "x-auth-token",
            "Client-Secret",
            "X-Password",
            "X-Session-Token",
        ] {
            assert!(is_secret_header(name), "{name}");
        }
        for name in ["Accept", "Content-Type", "X-Tenant", "Keep-Alive", "User-Agent"] {
            assert!(!is_secret_header(name), "{name}");
        }
        let request = RequestPlan {
            secret_headers: vec!["X-Tenant".to_owned()],
            ..RequestPlan::get("http://127.0.0.1", "/")
        };
        assert!(request.is_secret("x-tenant") && request.is_secret("Cookie") && !request.is_secret("Accept"));
    }

    #[test]
    fn k6_scenario_name_rule() {
        assert!(is_valid_k6_scenario_name("a-B_9"));
        assert!(!is_valid_k6_scenario_name(""));
        assert!(!is_valid_k6_scenario_name("a b"));
        assert!(!is_valid_k6_scenario_name("é"));
    }

    #[test]
    fn arrival_rate_vus_follow_littles_law_with_headroom() {
        // 100 it/s × (1 s think + 0.5 s response) = 150 busy VUs.
        assert_eq!(arrival_rate_vus(&stages(&[10, 100, 0]), 1.0, None), (150, 300));
        // No think time: 20 it/s × 0.5 s.
        assert_eq!(arrival_rate_vus(&stages(&[20]), 0.0, None), (10, 20));
    }

    #[test]
    fn arrival_rate_vus_have_floors() {
        assert_eq!(arrival_rate_vus(&stages(&[1]), 0.0, None), (1, MIN_DERIVED_MAX_VUS));
        assert_eq!(arrival_rate_vus(&stages(&[0]), 0.0, None), (1, MIN_DERIVED_MAX_VUS));
        assert_eq!(arrival_rate_vus(&[], 0.0, None), (1, MIN_DERIVED_MAX_VUS));
        // Bad think times count as none rather than poisoning the arithmetic.
        assert_eq!(arrival_rate_vus(&stages(&[20]), f64::NAN, None), (10, 20));
        assert_eq!(arrival_rate_vus(&stages(&[20]), -3.0, None), (10, 20));
    }

    #[test]
    fn derived_arrival_rate_vus_are_capped_but_explicit_max_is_not() {
        assert_eq!(arrival_rate_vus(&stages(&[5_000]), 2.0, None), (DERIVED_VUS_CAP, DERIVED_VUS_CAP));
        assert_eq!(
            arrival_rate_vus(&stages(&[u32::MAX]), f64::MAX, None),
            (DERIVED_VUS_CAP, DERIVED_VUS_CAP)
        );
        assert_eq!(arrival_rate_vus(&stages(&[5_000]), 2.0, Some(20_000)), (12_500, 20_000));
        assert_eq!(arrival_rate_vus(&stages(&[100]), 1.0, Some(50)), (50, 50));
        assert_eq!(arrival_rate_vus(&stages(&[100]), 1.0, Some(0)), (1, 1));
    }

    #[test]
    fn explicit_pre_allocation_wins_over_a_lower_max() {
        let mut scenario = ScenarioPlan {
            key: scenario_key("rate", 0),
            display_name: "rate".to_owned(),
            executor: Executor::ConstantArrivalRate,
            stages: stages(&[100]),
            think_time: 1.0,
            pre_allocated_vus: None,
            max_vus: None,
            response_time_target: None,
            error_rate_target: None,
            request: RequestPlan::get("http://127.0.0.1:8080", "/"),
        };
        assert_eq!(scenario.resolved_arrival_rate_vus(), (150, 300));
        scenario.pre_allocated_vus = Some(40);
        assert_eq!(scenario.resolved_arrival_rate_vus(), (40, 300));
        scenario.max_vus = Some(20);
        assert_eq!(scenario.resolved_arrival_rate_vus(), (40, 40));
        assert_eq!(scenario.peak_target(), 100);
    }
}
