//! What a delivery says: a JSON body with the event, the delivery's id, when the event occurred,
//! a one-line summary in `text`, and the run with its summary and a link to its report.
//!
//! `text` is what Slack shows when the URL is a Slack incoming webhook (Slack reads `text` and
//! ignores the other members), so one line must say what happened. Slack treats `<`, `>` and
//! `&` in it as markup (`<!channel>` pings everyone), so the user's words in it (titles, reasons)
//! are escaped as Slack asks (`&lt;`, `&gt;`, `&amp;`); the `run` object carries them as they are.

use chrono::{DateTime, Utc};
use sea_orm::ActiveEnum;
use serde_json::{Value, json};

use crate::{
    db::entities::{HasMetrics, test_history},
    domain::{MetricSummary, TestStatus, Verdict, webhook::WebhookEvent},
};

/// A run as a delivery describes it.
#[derive(Clone, Debug)]
pub struct RunFacts<'a> {
    pub id: i64,
    pub title: &'a str,
    pub status: TestStatus,
    pub verdict: Verdict,
    pub project_id: i64,
    pub project_title: &'a str,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub failure_reason: Option<&'a str>,
    pub summary: Option<MetricSummary>,
    /// Where the server's pages are, without a trailing `/`.
    pub base_url: &'a str,
}

impl<'a> RunFacts<'a> {
    /// The facts of a stored run.
    pub fn of(
        run: &'a test_history::Model,
        project_title: &'a str,
        verdict: Verdict,
        base_url: &'a str,
    ) -> Self {
        Self {
            id: run.id,
            title: &run.title,
            status: run.status,
            verdict,
            project_id: run.project_id,
            project_title,
            started_at: run.started_at,
            completed_at: run.completed_at,
            failure_reason: run.failure_reason.as_deref(),
            summary: run.metrics(),
            base_url,
        }
    }

    /// The run's report page (the page itself comes with issue 18).
    pub fn link(&self) -> String {
        format!("{}/runs/{}/report", self.base_url, self.id)
    }

    /// The `run` member of the body.
    pub fn to_json(&self) -> Value {
        let summary = self.summary.as_ref().map(|s| {
            json!({
                "totalRequests": s.total_requests,
                "failedRequests": s.failed_requests,
                "avgTps": s.avg_tps,
                "p95ResponseTime": s.p95_response_time,
                "p99ResponseTime": s.p99_response_time,
                "avgErrorRate": s.avg_error_rate,
            })
        });
        json!({
            "id": self.id.to_string(),
            "title": self.title,
            "status": self.status.to_value(),
            "verdict": verdict_name(self.verdict),
            "project": { "id": self.project_id.to_string(), "title": self.project_title },
            "startedAt": self.started_at,
            "completedAt": self.completed_at,
            "failureReason": self.failure_reason,
            "summary": summary,
            "link": self.link(),
        })
    }
}

/// The whole body of a delivery, as sent and signed. `detail` says more about a REGRESSION.
pub fn body(
    event: WebhookEvent,
    delivery_id: i64,
    occurred_at: DateTime<Utc>,
    facts: &RunFacts<'_>,
    detail: Option<&str>,
) -> String {
    json!({
        "event": event.as_str(),
        "deliveryId": delivery_id.to_string(),
        "occurredAt": occurred_at,
        "text": text(event, facts, detail),
        "run": facts.to_json(),
    })
    .to_string()
}

/// One line a person reads: what happened, the figures that matter, and the link.
pub fn text(event: WebhookEvent, facts: &RunFacts<'_>, detail: Option<&str>) -> String {
    let who = format!(
        "Run {} \"{}\" of {}",
        facts.id,
        slack_escape(&shorten(facts.title, 200)),
        slack_escape(&shorten(facts.project_title, 200))
    );
    let figures = match &facts.summary {
        Some(s) => format!(
            "{} requests, {:.2}% errors, p95 {:.1} ms, {:.1} req/s",
            thousands(s.total_requests),
            s.avg_error_rate,
            s.p95_response_time,
            s.avg_tps
        ),
        None => "no results read yet".to_owned(),
    };
    let what = match event {
        WebhookEvent::RunFinished => {
            format!("completed, verdict {}: {figures}", verdict_name(facts.verdict))
        }
        WebhookEvent::RunFailed => {
            let reason = facts.failure_reason.unwrap_or("no reason recorded");
            format!("failed: {}", slack_escape(&shorten(reason, 300)))
        }
        WebhookEvent::VerdictFailed => format!("missed its targets (verdict FAILED): {figures}"),
        WebhookEvent::Regression => {
            format!("regressed: {}", slack_escape(&shorten(detail.unwrap_or("see the report"), 300)))
        }
    };
    format!("{who} {what}. Report: {}", facts.link())
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Passed => "PASSED",
        Verdict::Failed => "FAILED",
        Verdict::Unknown => "UNKNOWN",
    }
}

/// What Slack asks of text that is not markup.
fn slack_escape(text: &str) -> String {
    let printable: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    printable.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The first `max` characters of one line of `text`, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    let line = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max).collect();
    cut.push('…');
    cut
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> MetricSummary {
        MetricSummary {
            total_requests: 12_345,
            failed_requests: 2,
            test_duration: 30.0,
            max_tps: 450.0,
            min_tps: 380.0,
            avg_tps: 411.5,
            max_response_time: 400.0,
            min_response_time: 1.0,
            avg_response_time: 80.0,
            p50_response_time: 60.0,
            p95_response_time: 245.26,
            p99_response_time: 301.0,
            max_error_rate: 0.1,
            min_error_rate: 0.0,
            avg_error_rate: 0.016,
            max_vus: 20.0,
            min_vus: 1.0,
            avg_vus: 12.0,
        }
    }

    fn facts(base_url: &str) -> RunFacts<'_> {
        let at: DateTime<Utc> = "2026-12-07T10:00:00Z".parse().unwrap();
        RunFacts {
            id: 12,
            title: "Checkout <!channel> & co",
            status: TestStatus::Completed,
            verdict: Verdict::Passed,
            project_id: 3,
            project_title: "Shop",
            started_at: Some(at),
            completed_at: Some(at + chrono::Duration::seconds(30)),
            failure_reason: None,
            summary: Some(summary()),
            base_url,
        }
    }

    #[test]
    fn the_body_carries_the_event_the_run_its_summary_and_the_link() {
        let facts = facts("https://mv.example");
        let at: DateTime<Utc> = "2026-12-07T10:00:31Z".parse().unwrap();
        let body: Value =
            serde_json::from_str(&body(WebhookEvent::RunFinished, 77, at, &facts, None)).unwrap();
        assert_eq!(body["event"], "RUN_FINISHED");
        assert_eq!(body["deliveryId"], "77");
        assert_eq!(body["occurredAt"], "2026-12-07T10:00:31Z");
        assert_eq!(body["run"]["id"], "12");
        assert_eq!(body["run"]["status"], "COMPLETED");
        assert_eq!(body["run"]["verdict"], "PASSED");
        assert_eq!(body["run"]["project"], json!({"id": "3", "title": "Shop"}));
        assert_eq!(body["run"]["startedAt"], "2026-12-07T10:00:00Z");
        assert_eq!(body["run"]["summary"]["totalRequests"], 12_345);
        assert_eq!(body["run"]["summary"]["p95ResponseTime"], 245.26);
        assert_eq!(body["run"]["link"], "https://mv.example/runs/12/report");
        assert_eq!(body["run"]["title"], "Checkout <!channel> & co", "the run object keeps the user's words");
        assert_eq!(
            body["text"],
            "Run 12 \"Checkout &lt;!channel&gt; &amp; co\" of Shop completed, verdict PASSED: 12,345 requests, \
             0.02% errors, p95 245.3 ms, 411.5 req/s. Report: https://mv.example/runs/12/report"
        );
    }

    #[test]
    fn a_failure_says_why_on_one_line_and_a_run_without_results_says_so() {
        let reason = format!("k6 instance 0 exited with 107\n{}", "x".repeat(400));
        let facts = RunFacts {
            status: TestStatus::Failed,
            verdict: Verdict::Unknown,
            failure_reason: Some(&reason),
            summary: None,
            ..facts("http://127.0.0.1:8000")
        };
        let line = text(WebhookEvent::RunFailed, &facts, None);
        assert!(
            line.starts_with("Run 12 \"Checkout &lt;!channel&gt; &amp; co\" of Shop failed: k6 instance 0 exited with 107 xxx"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        assert!(line.ends_with("…. Report: http://127.0.0.1:8000/runs/12/report"), "{line}");
        let body: Value =
            serde_json::from_str(&body(WebhookEvent::VerdictFailed, 1, Utc::now(), &facts, None)).unwrap();
        assert_eq!(body["run"]["summary"], Value::Null);
        assert_eq!(body["run"]["failureReason"], reason.as_str());
        assert!(body["text"].as_str().unwrap().contains("no results read yet"));
        let regressed = text(WebhookEvent::Regression, &facts, Some("p95 +40% against run 11"));
        assert!(regressed.contains("regressed: p95 +40% against run 11. Report:"), "{regressed}");
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
