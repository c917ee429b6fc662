//! `run`'s command line: flags, their environment fallbacks, and the usage text.

use std::time::Duration;

use url::Url;

use crate::k6::duration::parse_k6_duration;

/// `metric-vault run --help`.
pub const USAGE: &str = "\
usage: metric-vault run --plan <id|title> [--project <id|title>] [--server URL] [--token TOKEN]
                        [--wait] [--timeout DURATION] [--json] [--fail-on-regression]

Launches a saved test plan on a running Metric Vault server; with --wait, follows the run
live and exits with its verdict.

  --plan <id|title>     the plan: digits are its id, anything else its exact title
  --project <id|title>  look for the title in this project only (titles repeat across projects)
  --server URL          the server, e.g. https://metric-vault.example.com
                        (default: $METRIC_VAULT_SERVER)
  --token TOKEN         an API token with the OPERATOR role (default: $METRIC_VAULT_TOKEN,
                        which keeps it out of process lists and CI logs)
  --wait                follow the run to its end: a progress bar on a terminal, a line
                        every 5 s otherwise, then the summary table
  --timeout DURATION    stop waiting after this long and cancel the run, e.g. 20m
                        (default: the run's planned length + 10m)
  --json                print one JSON document on stdout at the end; everything else
                        goes to stderr
  --fail-on-regression  exit 1 also when the run REGRESSED against its plan's baseline

Exit status: 0 launched (without --wait) or verdict PASSED; 1 verdict FAILED (a target was
missed; with --fail-on-regression, also a regression); 2 anything else (bad arguments,
server unreachable, token refused, plan not found, run FAILED or CANCELLED, verdict
UNKNOWN, --timeout, Ctrl-C). Ctrl-C or SIGTERM while
waiting cancels the run (what was measured is kept); a second one exits at once.
TLS_EXTRA_CA_FILE (a PEM bundle) adds CAs to trust for an https server.";

/// A plan or project as named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameOrId {
    /// Digits only.
    Id(i64),
    /// Anything else: an exact title.
    Title(String),
}

impl NameOrId {
    fn parse(flag: &str, value: &str) -> Result<Self, UsageError> {
        if value.trim().is_empty() {
            return Err(UsageError(format!("{flag} is empty")));
        }
        if value.bytes().all(|b| b.is_ascii_digit()) {
            return value
                .parse()
                .map(Self::Id)
                .map_err(|_| UsageError(format!("{flag} {value}: an id that large does not exist")));
        }
        Ok(Self::Title(value.to_owned()))
    }
}

impl std::fmt::Display for NameOrId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Title(title) => write!(f, "\"{title}\""),
        }
    }
}

/// What `run` was asked to do.
#[derive(Clone, Debug, PartialEq)]
pub struct RunArgs {
    pub plan: NameOrId,
    pub project: Option<NameOrId>,
    /// The server's GraphQL endpoint (`…/graphql`).
    pub endpoint: Url,
    pub token: String,
    pub wait: bool,
    pub json: bool,
    /// None: the run's planned length + [`DEFAULT_TIMEOUT_MARGIN`].
    pub timeout: Option<Duration>,
    pub fail_on_regression: bool,
}

/// What `--timeout` defaults to beyond the run's planned length: time for k6 to start (a
/// Kubernetes pod may wait for an image or a node) and for the results to be read.
pub const DEFAULT_TIMEOUT_MARGIN: Duration = Duration::from_secs(600);

/// A command line `run` cannot work with; the message says what is wrong.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// `--help` was asked for, or the arguments.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Help,
    Run(RunArgs),
}

/// Reads `run`'s arguments (after `run`), taking `--server` and `--token` from `env` when
/// they are not given.
pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Parsed, UsageError> {
    let mut values: [Option<String>; 5] = Default::default();
    const VALUED: [&str; 5] = ["--plan", "--project", "--server", "--token", "--timeout"];
    let (mut wait, mut json, mut fail_on_regression) = (false, false, false);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let switch = match name {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--wait" => Some(&mut wait),
            "--json" => Some(&mut json),
            "--fail-on-regression" => Some(&mut fail_on_regression),
            _ => None,
        };
        if let Some(switch) = switch {
            if inline.is_some() {
                return Err(UsageError(format!("{name} takes no value")));
            }
            *switch = true;
            continue;
        }
        let Some(index) = VALUED.iter().position(|flag| *flag == name) else {
            return Err(UsageError(if name.starts_with('-') {
                format!("unknown option {name}")
            } else {
                format!("unexpected argument `{arg}`")
            }));
        };
        let value = match inline {
            Some(value) => value,
            None => rest.next().cloned().ok_or_else(|| UsageError(format!("{name} needs a value")))?,
        };
        if values[index].replace(value).is_some() {
            return Err(UsageError(format!("{name} is given twice")));
        }
    }
    let [plan, project, server, token, timeout] = values;

    let plan = NameOrId::parse("--plan", &plan.ok_or_else(|| UsageError("--plan is required".into()))?)?;
    let project = project.map(|project| NameOrId::parse("--project", &project)).transpose()?;
    let server = server.or_else(|| env("METRIC_VAULT_SERVER")).filter(|s| !s.trim().is_empty());
    let server =
        server.ok_or_else(|| UsageError("no server: pass --server or set METRIC_VAULT_SERVER".into()))?;
    let endpoint = graphql_endpoint(server.trim())?;
    let token = token.or_else(|| env("METRIC_VAULT_TOKEN")).unwrap_or_default();
    // `Bearer mv_…` pasted whole works as well as the token alone.
    let token = token.trim();
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim().to_owned();
    if token.is_empty() {
        return Err(UsageError("no token: pass --token or set METRIC_VAULT_TOKEN".into()));
    }
    let timeout = timeout
        .map(|text| {
            parse_k6_duration(&text).map_err(|err| UsageError(format!("--timeout: {err}"))).and_then(
                |timeout| match timeout.is_zero() {
                    true => Err(UsageError("--timeout must be longer than 0s".into())),
                    false => Ok(timeout),
                },
            )
        })
        .transpose()?;
    Ok(Parsed::Run(RunArgs { plan, project, endpoint, token, wait, json, timeout, fail_on_regression }))
}

/// The GraphQL endpoint of `server`: its base URL with `/graphql` added, or already ending so.
fn graphql_endpoint(server: &str) -> Result<Url, UsageError> {
    let wrong =
        |why: &str| UsageError(format!("--server {server}: {why}; e.g. https://metric-vault.example.com"));
    let mut url = Url::parse(server).map_err(|err| wrong(&err.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(wrong("expected an http:// or https:// URL"));
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/').to_owned();
    let path = if path.ends_with("/graphql") { path } else { format!("{path}/graphql") };
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(args: &[&str], env: &[(&str, &str)]) -> Result<Parsed, UsageError> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        parse(&args, |name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    fn run_args(args: &[&str], env: &[(&str, &str)]) -> RunArgs {
        match parse_with(args, env).expect("valid arguments") {
            Parsed::Run(args) => args,
            Parsed::Help => panic!("not help"),
        }
    }

    fn refusal(args: &[&str], env: &[(&str, &str)]) -> String {
        parse_with(args, env).expect_err("refused").0
    }

    const SERVER: &str = "--server=http://127.0.0.1:8000";

    #[test]
    fn digits_name_an_id_and_anything_else_a_title() {
        let args = run_args(&["--plan", "12", "--project", "Shop", SERVER, "--token", "mv_x"], &[]);
        assert_eq!(args.plan, NameOrId::Id(12));
        assert_eq!(args.project, Some(NameOrId::Title("Shop".into())));
        let args = run_args(&["--plan=Checkout 2", SERVER, "--token=mv_x"], &[]);
        assert_eq!(args.plan, NameOrId::Title("Checkout 2".into()));
        assert_eq!(refusal(&["--plan", " ", SERVER, "--token", "t"], &[]), "--plan is empty");
    }

    #[test]
    fn the_server_and_token_come_from_the_environment_when_not_given() {
        let env = [("METRIC_VAULT_SERVER", "https://mv.example.com/"), ("METRIC_VAULT_TOKEN", "mv_env")];
        let args = run_args(&["--plan", "1"], &env);
        assert_eq!(args.endpoint.as_str(), "https://mv.example.com/graphql");
        assert_eq!(args.token, "mv_env");
        let args = run_args(
            &["--plan", "1", "--server", "http://h:1/mv/graphql/", "--token", "Bearer mv_flag"],
            &env,
        );
        assert_eq!(args.endpoint.as_str(), "http://h:1/mv/graphql", "a flag wins, and `Bearer ` is dropped");
        assert_eq!(args.token, "mv_flag");
        assert!(!args.wait && !args.json && !args.fail_on_regression && args.timeout.is_none());
    }

    #[test]
    fn switches_and_the_timeout_are_read() {
        let args = run_args(
            &[
                "--plan",
                "1",
                SERVER,
                "--token",
                "t",
                "--wait",
                "--json",
                "--timeout",
                "1m30s",
                "--fail-on-regression",
            ],
            &[],
        );
        assert!(args.wait && args.json && args.fail_on_regression);
        assert_eq!(args.timeout, Some(Duration::from_secs(90)));
    }

    #[test]
    fn a_command_line_that_cannot_work_says_why() {
        assert_eq!(refusal(&[SERVER, "--token", "t"], &[]), "--plan is required");
        assert_eq!(
            refusal(&["--plan", "1", "--token", "t"], &[]),
            "no server: pass --server or set METRIC_VAULT_SERVER"
        );
        assert_eq!(
            refusal(&["--plan", "1", SERVER], &[]),
            "no token: pass --token or set METRIC_VAULT_TOKEN"
        );
        assert_eq!(refusal(&["--plan", "1", SERVER, "--token"], &[]), "--token needs a value");
        assert_eq!(refusal(&["--plan", "1", "--plan", "2", SERVER], &[]), "--plan is given twice");
        assert_eq!(refusal(&["--plan", "1", "--wiat"], &[]), "unknown option --wiat");
        assert_eq!(refusal(&["--plan", "1", "extra"], &[]), "unexpected argument `extra`");
        assert_eq!(refusal(&["--plan", "1", "--wait=yes"], &[]), "--wait takes no value");
        assert!(
            refusal(&["--plan", "1", "--token", "t", "--server", "localhost:8000"], &[]).contains("http://")
        );
        let timeout = refusal(&["--plan", "1", SERVER, "--token", "t", "--timeout", "30"], &[]);
        assert!(timeout.starts_with("--timeout: `30` has no unit"), "{timeout}");
        assert_eq!(parse_with(&["--plan", "1", "--help"], &[]), Ok(Parsed::Help));
    }
}
