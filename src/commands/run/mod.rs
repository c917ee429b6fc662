//! `metric-vault run`: the CI gate. The binary, as a client of a running server, launches a
//! saved test plan and (with `--wait`) follows the run to its end, then exits with its verdict:
//!
//! | exit | when |
//! |---|---|
//! | 0 | launched (without `--wait`); the run COMPLETED with verdict PASSED |
//! | 1 | the run COMPLETED with verdict FAILED: a target was missed |
//! | 2 | anything else: bad arguments, server unreachable, token refused, plan not found or ambiguous, launch refused, the run FAILED or was CANCELLED, verdict UNKNOWN (no targets, or results not read), `--timeout`, Ctrl-C / SIGTERM |
//!
//! Everything is bounded: each request by [`client::REQUEST_TIMEOUT`], the wait by `--timeout`
//! (default: the run's planned length + 10 min). When `run` stops waiting before the run ends
//! (`--timeout`, Ctrl-C, SIGTERM — what a CI system sends a cancelled job) it cancels the run,
//! so a pipeline that is gone leaves no load running; a second interrupt exits at once.

mod args;
mod client;
mod follow;
mod plan;
mod progress;
mod report;
mod socket;

use std::io::{IsTerminal, Write};

use serde_json::{Value, json};

use self::{
    args::{Parsed, RunArgs, UsageError},
    client::{ClientError, ServerClient},
    follow::{Ending, Interrupts},
    progress::{Progress, Style},
    report::{Outcome, RUN_FIELDS, Run},
};
use crate::{
    k6::duration::format_k6_duration,
    tls::{BundleError, TrustedRoots},
};

/// Why `run` could not get to a verdict; each is exit 2.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{0}\n(metric-vault run --help for usage)")]
    Usage(#[from] UsageError),
    #[error("TLS_EXTRA_CA_FILE: {0}")]
    Bundle(#[from] BundleError),
    #[error("{doing}: {source}")]
    Server {
        doing: String,
        #[source]
        source: ClientError,
    },
    #[error("{0}")]
    NotFound(String),
    /// The wait ended without a verdict.
    #[error("{0}")]
    Unfinished(String),
}

/// Runs `run <args>` and returns the process's exit status.
pub async fn run(args: &[String]) -> i32 {
    // Known before the arguments are read, so even a usage error answers in JSON.
    let json = args.iter().any(|arg| arg == "--json");
    let console = Console { json };
    let args = match args::parse(args, |name| std::env::var(name).ok()) {
        Ok(Parsed::Help) => {
            println!("{}", args::USAGE);
            return 0;
        }
        Ok(Parsed::Run(args)) => args,
        Err(error) => return console.fail(&GateError::from(error), None),
    };
    match gate(&args, &console).await {
        Ok(code) => code,
        Err((error, run)) => console.fail(&error, run),
    }
}

/// Where the output goes: with `--json`, stdout holds the one document and nothing else.
struct Console {
    json: bool,
}

impl Console {
    /// Where people's output goes: stdout, or stderr under `--json`.
    fn human(&self) -> Box<dyn Write + Send> {
        if self.json { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) }
    }

    fn say(&self, text: &str) {
        let mut out = self.human();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// Whether people's output goes to a terminal.
    fn human_is_terminal(&self) -> bool {
        if self.json { std::io::stderr().is_terminal() } else { std::io::stdout().is_terminal() }
    }

    fn human_fd(&self) -> i32 {
        if self.json { 2 } else { 1 }
    }

    /// The `--json` document, on stdout.
    fn document(&self, document: &Value) {
        if self.json {
            println!("{document}");
        }
    }

    /// Reports `error` (and the JSON document under `--json`); exit 2.
    fn fail(&self, error: &GateError, run: Option<Value>) -> i32 {
        eprintln!("metric-vault run: {error}");
        let code = Outcome::Error.exit_code();
        self.document(&json!({ "outcome": Outcome::Error.as_str(), "exitCode": code, "message": error.to_string(), "run": run }));
        code
    }
}

type Failure = (GateError, Option<Value>);

async fn gate(args: &RunArgs, console: &Console) -> Result<i32, Failure> {
    let roots = match std::env::var("TLS_EXTRA_CA_FILE") {
        Ok(path) if !path.trim().is_empty() => {
            TrustedRoots::with_bundle(path.trim()).map_err(|e| (e.into(), None))?
        }
        _ => TrustedRoots::default(),
    };
    let client = ServerClient::new(args.endpoint.clone(), args.token.clone(), &roots);
    let plan = plan::resolve(&client, &args.plan, args.project.as_ref()).await.map_err(|e| (e, None))?;

    let document = format!("mutation($id: ID!) {{ launchTestPlan(id: $id) {{ {RUN_FIELDS} }} }}");
    let mut data: Value = client.query(&document, json!({ "id": plan.id })).await.map_err(|source| {
        let doing = format!("launching test plan {} \"{}\"", plan.id, plan.title);
        (GateError::Server { doing, source }, None)
    })?;
    let launched = data["launchTestPlan"].take();
    let run: Run = serde_json::from_value(launched.clone()).map_err(|err| {
        let source = ClientError::Refused { code: "UNEXPECTED_ANSWER".into(), message: err.to_string() };
        (GateError::Server { doing: "reading the launched run".into(), source }, None)
    })?;
    let planned = run.planned_length();
    let launched_line = format!(
        "launched run {} of test plan {} \"{}\" (project {}){}",
        run.id,
        plan.id,
        plan.title,
        plan.project,
        planned.map(|p| format!(", {} of load planned", progress::clock(p))).unwrap_or_default()
    );

    if !args.wait {
        eprintln!("{launched_line}");
        if console.json {
            console
                .document(&json!({ "outcome": Outcome::Launched.as_str(), "exitCode": 0, "run": launched }));
        } else {
            // Only the id on stdout, for `RUN=$(metric-vault run …)`.
            println!("{}", run.id);
        }
        return Ok(Outcome::Launched.exit_code());
    }

    console.say(&launched_line);
    let timeout = args.timeout.unwrap_or_else(|| planned.unwrap_or_default() + args::DEFAULT_TIMEOUT_MARGIN);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut interrupts = Interrupts::listen();
    let style = if console.human_is_terminal() { Style::Bar } else { Style::Lines };
    let width = progress::terminal_width(console.human_fd());
    let mut display = Progress::new(console.human(), style, width, &run.id, planned);
    display.status(&run.status);
    let ending = follow::follow(&client, &roots, &run, &mut display, deadline, &mut interrupts).await;
    display.finish();

    let ended = match ending {
        Ending::Ended(answer) => answer,
        Ending::EndedWithoutResults(answer) => {
            let why = format!(
                "run {} ended, but its results were not read within --timeout {}",
                run.id,
                format_k6_duration(timeout)
            );
            return Err((GateError::Unfinished(why), Some(answer)));
        }
        Ending::Refused(source) => {
            let doing = format!("following run {}", run.id);
            return Err((GateError::Server { doing, source }, Some(launched)));
        }
        Ending::Interrupted(which) => cancel(&client, &launched, which, &mut interrupts).await?,
        Ending::TimedOut => {
            let why =
                format!("run {} has not ended within --timeout {}", run.id, format_k6_duration(timeout));
            cancel(&client, &launched, &why, &mut interrupts).await?
        }
    };
    let run: Run = serde_json::from_value(ended.clone()).map_err(|err| {
        let source = ClientError::Refused { code: "UNEXPECTED_ANSWER".into(), message: err.to_string() };
        (GateError::Server { doing: "reading the ended run".into(), source }, Some(ended.clone()))
    })?;
    let (outcome, why) = report::judge(&run);
    let (outcome, why) = match (args.fail_on_regression, &run.regression) {
        (true, Some(_)) => report::judge_regression(&run, outcome, why),
        (true, None) => (outcome, format!("{why} (no baseline to judge a regression against)")),
        (false, _) => (outcome, why),
    };
    console.say(&format!("\n{}\n{}", report::heading(&run), report::table(&run)));
    match outcome {
        Outcome::Error => eprintln!("metric-vault run: {why}"),
        _ => console.say(&format!("{}: {why}", outcome.as_str())),
    }
    let code = outcome.exit_code();
    console.document(&json!({ "outcome": outcome.as_str(), "exitCode": code, "message": why, "run": ended }));
    Ok(code)
}

/// Cancels run `run_id` because of `why` (the wait is over before the run): the run as the
/// cancel left it, to be judged (a run that ended as the cancel went out keeps its verdict).
async fn cancel(
    client: &ServerClient,
    launched: &Value,
    why: &str,
    interrupts: &mut Interrupts,
) -> Result<Value, Failure> {
    let run_id = launched["id"].as_str().unwrap_or_default();
    eprintln!("metric-vault run: {why}: cancelling run {run_id} (again to stop waiting for that)");
    follow::cancel(client, run_id, interrupts).await.map_err(|failed| {
        let message = format!("{why}; the cancel of run {run_id} failed ({failed}): it may still be running");
        (GateError::Unfinished(message), Some(launched.clone()))
    })
}

/// A text from the server as it may reach a terminal or a CI log: control characters (escape
/// sequences, carriage returns, line feeds that would forge a log line) become `\u{FFFD}`.
fn printable<'de, D: serde::Deserializer<'de>>(from: D) -> Result<String, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(from)?;
    Ok(text.chars().map(|c| if c.is_control() { '\u{FFFD}' } else { c }).collect())
}
