//! Metric Vault: a GraphQL server for API load testing.

/// Who may do what (API tokens, roles) and where load may go.
pub mod access;
/// Subcommands of the binary besides serving (`token create`, `export-schema`, `run`).
pub mod commands;
/// Typed settings from the environment.
pub mod config;
/// The metadata database: connection, migrations, entities, repositories.
pub mod db;
/// `metric-vault demo-target`: a small API to load-test on a fresh machine.
pub mod demo_target;
/// Enums and value types shared by the database and the API.
pub mod domain;
/// The one error type and its GraphQL codes.
pub mod error;
/// The GraphQL schema, loaders and types.
pub mod graphql;
/// HTTP routes around the schema.
pub mod http;
/// k6: durations, load plans and script generation.
pub mod k6;
/// The life of a run: launch, status, results, cancellation, recovery.
pub mod lifecycle;
/// Giving freed memory back to the system after a crowd of websockets leaves (glibc's arenas).
pub mod memory;
/// Metrics: reading k6 samples back from InfluxDB.
pub mod metrics;
/// Notifications: webhooks told of runs' ends, signed, retried, logged.
pub mod notify;
/// Reading OpenAPI and Swagger documents into the catalogue's model.
pub mod openapi;
/// Deterministic fixture data for tests and benchmarks.
pub mod seed;
/// Building and running the server.
pub mod startup;
/// Logging setup.
pub mod telemetry;
/// TLS for the server's own requests: the roots it trusts.
pub mod tls;

/// Shared by the fuzz targets (`make fuzz`) and their regression tests.
#[cfg(test)]
pub(crate) mod fuzzing {
    use std::{path::PathBuf, time::Duration};

    use proptest::{
        strategy::Strategy,
        test_runner::{Config, TestCaseError, TestError, TestRunner},
    };

    /// How long `make fuzz` runs each target: `FUZZ_SECONDS`, 60 by default.
    pub fn budget() -> Duration {
        let seconds = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
        Duration::from_secs(seconds)
    }

    /// Where the inputs that once failed `target` are kept (committed), to be replayed by every test run.
    pub fn saved_inputs_dir(target: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz").join(target)
    }

    /// Every saved input of `target`.
    pub fn saved_inputs(target: &str) -> Vec<(PathBuf, String)> {
        let Ok(entries) = std::fs::read_dir(saved_inputs_dir(target)) else { return Vec::new() };
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter_map(|path| Some((path.clone(), std::fs::read_to_string(&path).ok()?)))
            .collect()
    }

    /// Runs `check` on fresh inputs from `strategy` for [`budget`]; a failing input is shrunk,
    /// saved under [`saved_inputs_dir`] and reported.
    pub fn fuzz_for_a_while<S>(target: &str, strategy: S, check: impl Fn(&str) -> Result<(), TestCaseError>)
    where
        S: Strategy<Value = String>,
    {
        let deadline = std::time::Instant::now() + budget();
        let mut cases = 0u64;
        while std::time::Instant::now() < deadline {
            let config = Config { cases: 500, failure_persistence: None, ..Config::default() };
            let mut runner = TestRunner::new(config);
            if let Err(TestError::Fail(reason, input)) = runner.run(&strategy, |input| check(&input)) {
                let dir = saved_inputs_dir(target);
                std::fs::create_dir_all(&dir).expect("create the saved-inputs folder");
                let name = format!("{:016x}.txt", fnv1a(input.as_bytes()));
                std::fs::write(dir.join(&name), &input).expect("save the failing input");
                panic!("{target}: {reason}; input saved as tests/fixtures/fuzz/{target}/{name}");
            }
            cases += 500;
        }
        eprintln!("{target}: {cases} random inputs in {:?}, no failure", budget());
    }

    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3))
    }
}
