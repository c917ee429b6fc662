//! k6 load-test scripts: the plan a test is rendered from, and the rendering.
//!
//! Everything here is pure: no I/O, no process spawning (tests aside).

/// k6's own end-of-test counts: how the script writes them and the server sums them.
pub mod counts;
/// k6 duration strings: parsing, validation and formatting.
pub mod duration;
/// How k6 writes its samples to InfluxDB: the output's settings and tags.
pub mod influx_output;
/// Validated test plans, scenario keys and arrival-rate VU sizing.
pub mod plan;
/// Where k6 runs: the Runner trait, the local and Kubernetes runners, the set built at startup.
pub mod runner;
/// Rendering a plan as a k6 script.
pub mod script;

pub use duration::{
    DurationError, format_k6_duration, is_valid_k6_duration, parse_k6_duration, total_duration,
};
pub use plan::{
    Executor, RequestBodyPlan, RequestPlan, ScenarioPlan, StagePlan, TestPlan, arrival_rate_vus,
    is_secret_header, is_valid_k6_scenario_name, scenario_key,
};
pub use script::{ScriptSecrets, render_script, script_secrets};
