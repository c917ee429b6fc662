//! Typed settings from the environment (and an optional `.env`).
//!
//! The variable names are the ones the original FastAPI service used, so its
//! users can move over without renaming anything. A bad value stops start-up
//! with a message naming the variable and what it accepts.

mod connections;
mod env;
mod import;
mod load_budget;
mod raw_samples;
mod regression;
mod report;
mod security;
mod webhooks;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use env::{
    BOOLEANS, DATABASE_URL_FORMS, Env, SWITCHES, is_database_url, is_dns_label, is_identifier, is_image,
    is_log_level,
};

pub use connections::{AllowedHosts, AllowedOrigins, ConnectionSettings, Origin};
pub use import::ImportSettings;
pub use load_budget::LoadBudget;
pub use raw_samples::RawRetention;
pub use regression::RegressionSettings;
pub use report::ReportSettings;
pub use security::SecuritySettings;
pub use webhooks::WebhookSettings;

/// Which runner starts k6 when a launch does not say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunnerSetting {
    /// k6 child processes on this machine.
    Local,
    /// Kubernetes Jobs in the configured namespace.
    Kubernetes,
}

impl RunnerSetting {
    /// The runner it names.
    pub fn kind(self) -> crate::domain::RunnerKind {
        match self {
            Self::Local => crate::domain::RunnerKind::Local,
            Self::Kubernetes => crate::domain::RunnerKind::Kubernetes,
        }
    }
}

/// What a schedule does with due times that passed while no server was running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissedRuns {
    /// Record them as skipped and wait for the next due time (cron's own habit).
    Skip,
    /// Launch once for all of them, as soon as a server is up.
    RunOnce,
}

/// Everything the server reads from its environment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: String,
    pub bind_addr: SocketAddr,
    pub runner: RunnerSetting,
    pub influxdb_host: String,
    pub influxdb_port: u16,
    pub influxdb_database: String,
    pub k6_script_file_folder: PathBuf,
    pub k6_default_pvc: Option<String>,
    pub kubernetes_namespace: String,
    pub scheduler_poll_interval: Duration,
    /// How long a run's owner may go without renewing its lease before another instance
    /// ends or takes over the run (`RUN_LEASE_SECONDS`).
    pub run_lease: Duration,
    /// What a schedule does with a due time no server was up for (`SCHEDULE_MISSED_RUNS`).
    pub schedule_missed_runs: MissedRuns,
    /// How late a due time may be taken before it counts as missed (`SCHEDULE_MISSED_AFTER_SECONDS`).
    pub schedule_missed_after: Duration,
    pub scheduler_max_retry: u32,
    pub scheduler_metrics_delay: Duration,
    pub scheduler_job_timeout_hours: f64,
    pub scheduler_job_warning_hours: f64,
    pub log_level: String,
    pub auto_delete_completed_jobs: bool,
    /// The k6 executable (`K6_BINARY`), found on PATH when it is a bare name.
    pub k6_binary: String,
    /// Local k6 instances serve k6's web dashboard on loopback, proxied at `/runs/{id}/dashboard/` (`K6_WEB_DASHBOARD`).
    pub k6_web_dashboard: bool,
    /// `INFLUXDB_SAMPLES=all`: local runs store every sample k6 takes, not only the
    /// measurements the server reads (`read`, the default).
    pub influxdb_all_samples: bool,
    /// Authentication, request limits, allowed and blocked targets.
    pub security: SecuritySettings,
    /// Where documents may be imported from and what parsing one may cost (`IMPORT_*`).
    pub import: ImportSettings,
    /// Websocket limits, and the `Host` and `Origin` headers a request may carry.
    pub connections: ConnectionSettings,
    /// The image of the Kubernetes runner's k6 pods (`K6_IMAGE`).
    pub k6_image: String,
    /// `ttlSecondsAfterFinished` of the runs' Jobs (`K8S_JOB_TTL_SECONDS`); None: no TTL.
    pub k8s_job_ttl_seconds: Option<i32>,
    /// Failed runs' Jobs lose their TTL so their logs can be read (`K8S_KEEP_FAILED_JOBS`).
    pub k8s_keep_failed_jobs: bool,
    /// Requests and limits of the k6 container (`K8S_K6_CPU_REQUEST` ...); None leaves one out.
    pub k8s_k6_cpu_request: Option<String>,
    pub k8s_k6_cpu_limit: Option<String>,
    pub k8s_k6_memory_request: Option<String>,
    pub k8s_k6_memory_limit: Option<String>,
    /// How the k6 pods get the script (`K8S_SCRIPT_DELIVERY`).
    pub k8s_script_delivery: ScriptDeliverySetting,
    /// A k6 pod unschedulable this long fails its run (`K8S_UNSCHEDULABLE_GRACE_SECONDS`).
    pub k8s_unschedulable_grace: Duration,
    /// Rows' worth of catalogues and runs each read cache keeps (`READ_CACHE_ROWS`; 0: none).
    pub read_cache_rows: usize,
    /// `GRAPHQL_FAST_PATHS`: whether the GraphQL fast paths (`graphql::fast`: read caches,
    /// eager answers, SQLite-written JSON lists, shared subscription renderings) are taken.
    /// Off, every answer is resolved the general way: the same answers, slower.
    pub fast_paths: bool,
    /// `MAX_VUS_PER_TEST`, `MAX_RATE_PER_TEST`: the most load one launch may ask for.
    pub load_budget: LoadBudget,
    /// `INFLUXDB_RAW_RETENTION`: how long InfluxDB keeps raw samples (unset: untouched).
    pub raw_retention: RawRetention,
    /// `PUBLIC_BASE_URL` and `WEBHOOK_*`: links in notifications, and how deliveries are tried.
    pub webhooks: WebhookSettings,
    /// `REGRESSION_*`: how demanding regression verdicts against a plan's baseline are.
    pub regression: RegressionSettings,
    /// `REPORT_LINK_LIFETIME_HOURS`, and the key report links are signed with.
    pub report: ReportSettings,
}

/// How the Kubernetes runner hands the script to its pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptDeliverySetting {
    /// A ConfigMap per run (at most about 1 MiB).
    ConfigMap,
    /// The file the server writes into `K6_SCRIPT_FILE_FOLDER`, which is the `K6_DEFAULT_PVC` volume.
    Pvc,
}

/// A variable that is set but holds a value the server cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {variable}={value:?}: expected {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// The SQLite file used when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/metric-vault.db?mode=rwc";

impl Settings {
    /// Reads the process environment, after loading `.env` when one exists.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of the real environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup: &lookup };
        Ok(Self {
            database_url: env.text(
                "DATABASE_URL",
                DEFAULT_DATABASE_URL,
                is_database_url,
                DATABASE_URL_FORMS,
            )?,
            bind_addr: env.parsed(
                "BIND_ADDR",
                "127.0.0.1:8000",
                "a socket address such as 127.0.0.1:8000",
            )?,
            runner: env.choice(
                "RUNNER",
                RunnerSetting::Local,
                &[("local", RunnerSetting::Local), ("kubernetes", RunnerSetting::Kubernetes)],
                "one of: local, kubernetes",
            )?,
            influxdb_host: env.text(
                "INFLUXDB_HOST",
                "127.0.0.1",
                |v| !v.is_empty(),
                "a host name or address",
            )?,
            influxdb_port: env.parsed("INFLUXDB_PORT", "8086", "a TCP port (1-65535)")?,
            influxdb_database: env.text(
                "INFLUXDB_DATABASE",
                "k6",
                is_identifier,
                "a database name of letters, digits, _ or -",
            )?,
            k6_script_file_folder: PathBuf::from(env.text(
                "K6_SCRIPT_FILE_FOLDER",
                "./data/scripts",
                |v| !v.is_empty(),
                "a folder path",
            )?),
            k6_default_pvc: env.optional("K6_DEFAULT_PVC"),
            kubernetes_namespace: env.text(
                "KUBERNETES_NAMESPACE",
                "default",
                is_dns_label,
                "a Kubernetes namespace name (DNS label)",
            )?,
            scheduler_poll_interval: Duration::from_secs_f64(env.positive(
                "SCHEDULER_POLL_INTERVAL",
                5.0,
                "a positive number of seconds",
            )?),
            run_lease: Duration::from_secs_f64(env.positive(
                "RUN_LEASE_SECONDS",
                15.0,
                "a positive number of seconds",
            )?),
            schedule_missed_runs: env.choice(
                "SCHEDULE_MISSED_RUNS",
                MissedRuns::Skip,
                &[("skip", MissedRuns::Skip), ("run-once", MissedRuns::RunOnce)],
                "one of: skip, run-once",
            )?,
            schedule_missed_after: Duration::from_secs_f64(env.positive(
                "SCHEDULE_MISSED_AFTER_SECONDS",
                60.0,
                "a positive number of seconds",
            )?),
            scheduler_max_retry: env.parsed(
                "SCHEDULER_MAX_RETRY",
                "3",
                "a whole number of retries (0 or more)",
            )?,
            scheduler_metrics_delay: Duration::from_secs_f64(env.non_negative(
                "SCHEDULER_METRICS_DELAY",
                2.0,
                "a number of seconds (0 or more)",
            )?),
            // Bounded so that every stage limit and deadline derived from it stays representable.
            scheduler_job_timeout_hours: env.number(
                "SCHEDULER_JOB_TIMEOUT_HOURS",
                2.0,
                |hours| hours > 0.0 && hours <= MAX_JOB_TIMEOUT_HOURS,
                "a positive number of hours, at most 8760 (a year)",
            )?,
            scheduler_job_warning_hours: env.positive(
                "SCHEDULER_JOB_WARNING_HOURS",
                1.0,
                "a positive number of hours",
            )?,
            log_level: env
                .text("LOG_LEVEL", "info", is_log_level, "one of: trace, debug, info, warn, error")?
                .to_ascii_lowercase(),
            auto_delete_completed_jobs: env.choice(
                "AUTO_DELETE_COMPLETED_JOBS",
                false,
                BOOLEANS,
                "true or false",
            )?,
            k6_binary: env.text("K6_BINARY", "k6", |v| !v.is_empty(), "a path to the k6 executable")?,
            k6_web_dashboard: env.choice("K6_WEB_DASHBOARD", true, BOOLEANS, "true or false")?,
            influxdb_all_samples: env.choice("INFLUXDB_SAMPLES", false, &[("read", false), ("all", true)], "read or all")?,
            security: SecuritySettings::read(&env)?,
            import: ImportSettings::read(&env)?,
            connections: ConnectionSettings::read(&env)?,
            k6_image: env.text("K6_IMAGE", DEFAULT_K6_IMAGE, is_image, "a container image such as grafana/k6:1.1.0")?,
            k8s_job_ttl_seconds: match env.optional("K8S_JOB_TTL_SECONDS").as_deref() {
                Some(off) if off.eq_ignore_ascii_case("off") => None,
                _ => Some(env.parsed::<u32>(
                    "K8S_JOB_TTL_SECONDS",
                    "3600",
                    "a whole number of seconds (at most 2147483647), or off",
                )?)
                .map(|ttl| i32::try_from(ttl).unwrap_or(i32::MAX)),
            },
            k8s_keep_failed_jobs: env.choice("K8S_KEEP_FAILED_JOBS", true, BOOLEANS, "true or false")?,
            k8s_k6_cpu_request: env.quantity("K8S_K6_CPU_REQUEST", "500m")?,
            k8s_k6_cpu_limit: env.quantity("K8S_K6_CPU_LIMIT", "none")?,
            k8s_k6_memory_request: env.quantity("K8S_K6_MEMORY_REQUEST", "256Mi")?,
            k8s_k6_memory_limit: env.quantity("K8S_K6_MEMORY_LIMIT", "1Gi")?,
            k8s_script_delivery: env.choice(
                "K8S_SCRIPT_DELIVERY",
                ScriptDeliverySetting::ConfigMap,
                &[("configmap", ScriptDeliverySetting::ConfigMap), ("pvc", ScriptDeliverySetting::Pvc)],
                "one of: configmap, pvc",
            )?,
            k8s_unschedulable_grace: Duration::from_secs_f64(env.positive(
                "K8S_UNSCHEDULABLE_GRACE_SECONDS",
                120.0,
                "a positive number of seconds",
            )?),
            fast_paths: env.choice("GRAPHQL_FAST_PATHS", true, SWITCHES, "on or off")?,
            read_cache_rows: env.parsed("READ_CACHE_ROWS", "200000", "a whole number of rows (0 turns the caches off)")?,
            load_budget: LoadBudget::read(&env)?,
            raw_retention: RawRetention::read(&env)?,
            webhooks: WebhookSettings::read(&env)?,
            regression: RegressionSettings::read(&env)?,
            report: ReportSettings::read(&env)?,
        })
        .and_then(|settings| {
            if settings.k8s_script_delivery == ScriptDeliverySetting::Pvc && settings.k6_default_pvc.is_none() {
                return Err(ConfigError {
                    variable: "K8S_SCRIPT_DELIVERY",
                    value: "pvc".into(),
                    expected: "configmap, unless K6_DEFAULT_PVC names the claim mounted at K6_SCRIPT_FILE_FOLDER",
                });
            }
            Ok(settings)
        })
    }

    /// True when the metadata database is PostgreSQL rather than the embedded SQLite.
    pub fn uses_postgres(&self) -> bool {
        self.database_url.starts_with("postgres://") || self.database_url.starts_with("postgresql://")
    }

    /// Base URL of the InfluxDB 1.x HTTP API.
    pub fn influxdb_url(&self) -> String {
        format!("http://{}:{}", self.influxdb_host, self.influxdb_port)
    }
}

/// The longest `SCHEDULER_JOB_TIMEOUT_HOURS`: a year.
pub const MAX_JOB_TIMEOUT_HOURS: f64 = 8_760.0;

/// The k6 image of the Kubernetes runner's pods: the k6 version the tests run here.
pub const DEFAULT_K6_IMAGE: &str = "grafana/k6:1.1.0";

/// Settings read from `pairs` alone, for tests.
#[cfg(test)]
pub(crate) fn settings_from_pairs(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::from_lookup(|name| {
        pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        settings_from_pairs(pairs)
    }

    #[test]
    fn defaults_give_an_embedded_local_setup() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(s.bind_addr.to_string(), "127.0.0.1:8000");
        assert_eq!(s.runner, RunnerSetting::Local);
        assert_eq!(s.influxdb_url(), "http://127.0.0.1:8086");
        assert!(!s.uses_postgres());
        assert!(!s.auto_delete_completed_jobs);
        assert_eq!(s.k6_image, DEFAULT_K6_IMAGE);
        assert_eq!(s.k8s_job_ttl_seconds, Some(3600));
        assert!(s.k8s_keep_failed_jobs);
        assert_eq!(s.k8s_k6_memory_limit.as_deref(), Some("1Gi"));
        assert_eq!(s.k8s_k6_cpu_limit, None);
        assert_eq!(s.k8s_script_delivery, ScriptDeliverySetting::ConfigMap);
    }

    #[test]
    fn kubernetes_runner_settings_are_read() {
        let s = settings(&[
            ("K6_IMAGE", "registry.example/xk6:2"),
            ("K8S_JOB_TTL_SECONDS", "off"),
            ("K8S_KEEP_FAILED_JOBS", "false"),
            ("K8S_K6_CPU_LIMIT", "2"),
            ("K8S_K6_MEMORY_REQUEST", "none"),
            ("K8S_SCRIPT_DELIVERY", "pvc"),
            ("K6_DEFAULT_PVC", "k6-scripts"),
        ])
        .unwrap();
        assert_eq!(s.k6_image, "registry.example/xk6:2");
        assert_eq!(s.k8s_job_ttl_seconds, None);
        assert!(!s.k8s_keep_failed_jobs);
        assert_eq!(s.k8s_k6_cpu_limit.as_deref(), Some("2"));
        assert_eq!(s.k8s_k6_memory_request, None);
        assert_eq!(s.k8s_script_delivery, ScriptDeliverySetting::Pvc);
    }

    #[test]
    fn seed_variable_names_are_read() {
        let s = settings(&[
            ("INFLUXDB_HOST", "influx.local"),
            ("INFLUXDB_PORT", "9999"),
            ("INFLUXDB_DATABASE", "loadtests"),
            ("RUNNER", "Kubernetes"),
            ("AUTO_DELETE_COMPLETED_JOBS", "yes"),
            ("SCHEDULER_JOB_TIMEOUT_HOURS", "0.5"),
            ("DATABASE_URL", "postgres://root@127.0.0.1:5432/mv"),
        ])
        .unwrap();
        assert_eq!(s.influxdb_url(), "http://influx.local:9999");
        assert_eq!(s.influxdb_database, "loadtests");
        assert_eq!(s.runner, RunnerSetting::Kubernetes);
        assert!(s.auto_delete_completed_jobs);
        assert_eq!(s.scheduler_job_timeout_hours, 0.5);
        assert!(s.uses_postgres());
    }

    #[test]
    fn bad_values_name_the_variable_and_what_it_accepts() {
        let cases = [
            ("RUNNER", "docker", "one of: local, kubernetes"),
            ("INFLUXDB_PORT", "70000", "a TCP port (1-65535)"),
            ("BIND_ADDR", "localhost", "a socket address such as 127.0.0.1:8000"),
            ("SCHEDULER_JOB_TIMEOUT_HOURS", "-1", "a positive number of hours, at most 8760 (a year)"),
            ("SCHEDULER_JOB_TIMEOUT_HOURS", "1e300", "a positive number of hours, at most 8760 (a year)"),
            ("SCHEDULER_POLL_INTERVAL", "soon", "a positive number of seconds"),
            ("LOG_LEVEL", "loud", "one of: trace, debug, info, warn, error"),
            ("DATABASE_URL", "mysql://x", DATABASE_URL_FORMS),
            ("AUTO_DELETE_COMPLETED_JOBS", "maybe", "true or false"),
            ("K8S_K6_MEMORY_LIMIT", "lots", "a Kubernetes quantity such as 500m, 2, 256Mi or 1Gi, or none"),
            ("K8S_JOB_TTL_SECONDS", "-5", "a whole number of seconds (at most 2147483647), or off"),
            (
                "K8S_SCRIPT_DELIVERY",
                "pvc",
                "configmap, unless K6_DEFAULT_PVC names the claim mounted at K6_SCRIPT_FILE_FOLDER",
            ),
            ("K8S_KEEP_FAILED_JOBS", "sometimes", "true or false"),
        ];
        for (variable, value, expected) in cases {
            let err = settings(&[(variable, value)]).unwrap_err();
            assert_eq!(err, ConfigError { variable, value: value.into(), expected }, "{variable}");
            assert!(err.to_string().contains(variable));
        }
    }
}
