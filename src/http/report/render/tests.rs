use chrono::{TimeZone, Utc};

use super::*;
use crate::http::report::{
    data::{BaselineRow, PlanRef, RunFacts, StageFacts},
    series::SeriesColumns,
};

const HOSTILE: &str = "</script><script>alert(1)</script><!-- \u{2028} & 'q' \"dq\"";

fn figures() -> Figures {
    Figures {
        total_requests: 12_345,
        failed_requests: 3,
        test_duration: 10.0,
        avg_tps: 1234.5,
        max_tps: 1500.0,
        avg_response_time: 4.2,
        p50_response_time: 3.9,
        p95_response_time: 8.75,
        p99_response_time: 12.5,
        max_response_time: 40.0,
        avg_error_rate: 0.0243,
        max_vus: 10.0,
    }
}

fn report(title: &str, charts: Charts) -> ReportData {
    let at = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap();
    ReportData {
        generated_at: at,
        run: RunFacts {
            id: 42,
            title: title.into(),
            description: Some(title.into()),
            status: "COMPLETED".into(),
            verdict: "PASSED".into(),
            runner: "LOCAL".into(),
            parallelism: 1,
            tested_at: at,
            started_at: Some(at),
            completed_at: Some(at + chrono::Duration::seconds(7_203)),
            failure_reason: Some(title.into()),
            target_tps: Some(100.0),
            results_complete: true,
            results_pending: false,
            missing_samples: Some(0),
            plan: Some(PlanRef { id: 3, version: Some(2) }),
            summary: Some(figures()),
            totals: Some(Totals {
                requests: 12_345,
                failed_requests: 3,
                iterations: 12_345,
                data_sent: 2_500_000,
                data_received: 900,
            }),
        },
        scenarios: vec![ScenarioFacts {
            name: title.into(),
            scenario_tag: "s_0".into(),
            endpoint: Some(format!("GET http://127.0.0.1:1/{title}")),
            executor: "constant-vus".into(),
            think_time: 0.5,
            max_vus_limit: None,
            response_time_target: Some(250.0),
            error_rate_target: Some(1.0),
            verdict: "PASSED".into(),
            stages: vec![StageFacts { duration: "30s".into(), target: 10 }],
            request: Some(serde_json::json!({ "headers": { "x-name": title } })),
            summary: Some(figures()),
            totals: None,
        }],
        script: format!("export default function () {{ // {title}\n}}\n"),
        charts,
        baseline: None,
    }
}

fn drawn() -> Charts {
    let columns = SeriesColumns {
        time: vec![1, 2],
        tps: vec![1.0, 2.0],
        avg: vec![Some(1.0), None],
        p50: vec![Some(1.0), None],
        p95: vec![Some(1.0), None],
        p99: vec![Some(1.0), None],
        error_rate: vec![Some(0.0), None],
        vus: vec![1.0, 1.0],
    };
    Charts::Drawn { step_seconds: 1, run: columns.clone(), scenarios: vec![columns] }
}

const FAKE_UPLOT: Uplot =
    Uplot { version: "0.0.0-test", script: "window.uPlot = function () {};", style: ".u{}" };

/// The inline scripts that run (not the JSON data block), in order.
fn running_scripts(html: &str) -> Vec<&str> {
    html.split("<script>").skip(1).map(|rest| rest.split("</script>").next().unwrap()).collect()
}

#[test]
fn user_text_is_escaped_everywhere_and_cannot_open_or_close_a_tag() {
    let html = page(&report(HOSTILE, drawn()), Some(&FAKE_UPLOT), &ContentPolicy::new(Some(&FAKE_UPLOT)));

    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<!-- "), "no comment opened by the data");
    assert!(html.contains("id=\"chart-groups\""), "the charts' place");
    assert!(html.contains("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The page's own three tags, and nothing else: uPlot, the page's script, the data block.
    assert_eq!(html.matches("<script").count(), 3, "{html}");
    assert_eq!(html.matches("</script>").count(), 3);
    assert_eq!(running_scripts(&html), [FAKE_UPLOT.script, REPORT_SCRIPT]);
}

#[test]
fn the_embedded_json_reads_back_as_the_same_data() {
    let data = report(HOSTILE, drawn());
    let embedded = embed_json(&data);
    for forbidden in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
        assert!(!embedded.contains(forbidden), "{forbidden:?} in {embedded}");
    }
    let back: serde_json::Value = serde_json::from_str(&embedded).unwrap();
    assert_eq!(back, serde_json::to_value(&data).unwrap());
    assert_eq!(back["run"]["title"], HOSTILE);
    assert_eq!(back["charts"]["state"], "drawn");
    assert_eq!(back["charts"]["run"]["p95"], serde_json::json!([1.0, null]));
}

#[test]
fn escape_replaces_the_five_markup_characters() {
    assert_eq!(
        escape(r#"<a href="x" title='y'>&amp;</a>"#),
        "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
    );
    assert_eq!(escape("plain ünïcode"), "plain ünïcode");
}

#[test]
fn only_the_page_s_own_scripts_may_run_and_nothing_may_be_fetched() {
    let policy = ContentPolicy::new(Some(&FAKE_UPLOT));
    let html = page(&report("Checkout", drawn()), Some(&FAKE_UPLOT), &policy);
    let header = policy.header();
    for script in running_scripts(&html) {
        let hash = STANDARD.encode(Sha256::digest(script.as_bytes()));
        assert!(header.contains(&format!("'sha256-{hash}'")), "{header}");
    }
    assert!(header.starts_with("default-src 'none'; script-src 'sha256-"));
    assert!(
        !header.contains("'self'") && !header.contains("unsafe-eval") && !header.contains("http"),
        "{header}"
    );
    assert!(!header.split("script-src").nth(1).unwrap().split(';').next().unwrap().contains("unsafe-inline"));
    assert!(html.contains(&format!("content=\"{}\"", escape(&policy.0))), "a saved copy keeps the policy");
    assert!(!policy.0.contains("frame-ancestors"), "browsers ignore it in <meta>, with a console error");
}

#[test]
fn without_uplot_the_page_says_so_and_still_has_every_table() {
    let html = page(&report("Checkout", drawn()), None, &ContentPolicy::new(None));
    assert!(html.contains("Charts are unavailable in this build"));
    assert!(html.contains("npm ci --prefix web"));
    assert!(!html.contains("id=\"chart-groups\""));
    assert_eq!(running_scripts(&html), [REPORT_SCRIPT]);
    for section in ["id=\"summary\"", "id=\"targets\"", "id=\"totals\"", "id=\"plan\"", "id=\"script\""] {
        assert!(html.contains(section), "{section}");
    }
    assert!(html.contains("<td>12,345</td>"), "the run's requests");
    assert!(html.contains("p95 ≤ 250.0 ms"));
}

#[test]
fn without_samples_the_page_gives_the_reason_instead_of_charts() {
    let reason = "InfluxDB could not be read <now>";
    let html = page(
        &report("Checkout", Charts::Unavailable { reason: reason.into() }),
        Some(&FAKE_UPLOT),
        &ContentPolicy::new(Some(&FAKE_UPLOT)),
    );
    assert!(html.contains("InfluxDB could not be read &lt;now&gt;"));
    assert!(!html.contains("id=\"chart-groups\""));
}

#[test]
fn the_baseline_section_appears_only_with_a_baseline() {
    let mut data = report("Checkout", drawn());
    let policy = ContentPolicy::new(None);
    assert!(!page(&data, None, &policy).contains("id=\"baseline\""));

    data.baseline = Some(BaselineComparison {
        baseline_id: 7,
        baseline_title: HOSTILE.into(),
        baseline_tested_at: data.run.tested_at,
        rows: vec![BaselineRow {
            scope: Some("browse".into()),
            metric: "p95 ms".into(),
            baseline: Some(10.0),
            candidate: Some(12.5),
            verdict: Some("REGRESSED".into()),
            change: Some("+42.0% (+35.0% to +50.0%), p 0.0001".into()),
        }],
    });
    let html = page(&data, None, &policy);
    assert!(html.contains("id=\"baseline\""));
    assert!(html.contains("<td>REGRESSED</td>"));
    assert!(!html.contains("<script>alert"));
}

#[test]
fn numbers_read_as_people_write_them() {
    assert_eq!(number(1_234_567.891, 1), "1,234,567.9");
    assert_eq!(number(-1234.0, 0), "-1,234");
    assert_eq!(number(999.0, 0), "999");
    assert_eq!(millis(4.256), "4.26");
    assert_eq!(millis(1234.56), "1,234.6");
    assert_eq!(percent(0.0243), "0.02 %");
    assert_eq!(bytes(2_500_000), "2.50 MB");
    assert_eq!(duration(7_203.0), "2 h 0 min 3 s");
    assert_eq!(duration(12.34), "12.3 s");
}
