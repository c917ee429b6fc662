//! The report page's HTML: one self-contained document (styles, scripts and data inline), so it
//! renders with no network and can be saved and mailed.
//!
//! **Safety rule**: every text that comes from a user or a run (titles, names, paths, request
//! values, the script, failure reasons) goes through [`escape`] into the markup, and the data
//! goes through [`embed_json`] into its `<script type="application/json">`, which cannot close
//! the tag. Scripts run only if their SHA-256 is in the page's Content-Security-Policy
//! ([`ContentPolicy`]), so markup that slipped through could not run anyway.

use std::fmt::Write as _;

use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

use super::data::{BaselineComparison, Charts, Figures, ReportData, ScenarioFacts, Totals};

mod format;

use format::{bytes, count, duration, millis, number, percent, time};

/// uPlot's files, embedded by build.rs from web/node_modules (None when they were not installed).
pub struct Uplot {
    pub version: &'static str,
    pub script: &'static str,
    pub style: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/uplot.rs"));

/// The page's own script and style.
const REPORT_SCRIPT: &str = include_str!("report.js");
const REPORT_STYLE: &str = include_str!("report.css");

/// What the page's scripts may do: nothing but run, and only these scripts.
pub struct ContentPolicy(String);

impl ContentPolicy {
    /// The policy for a page built with `uplot`: its scripts by hash, inline styles (uPlot sets
    /// them), `data:` images (the favicon), and no fetch, frame, form or base of any kind.
    pub fn new(uplot: Option<&Uplot>) -> Self {
        let hash = |script: &str| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(script.as_bytes())));
        let mut scripts = vec![hash(REPORT_SCRIPT)];
        scripts.extend(uplot.map(|uplot| hash(uplot.script)));
        Self(format!(
            "default-src 'none'; script-src {}; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'",
            scripts.join(" ")
        ))
    }

    /// As a response header, which may also forbid framing.
    pub fn header(&self) -> String {
        format!("{}; frame-ancestors 'none'", self.0)
    }
}

/// The whole page.
pub fn page(data: &ReportData, uplot: Option<&Uplot>, policy: &ContentPolicy) -> String {
    let run = &data.run;
    let mut html = String::with_capacity(64 * 1024);
    let title = format!("Run {} · {} · Metric Vault report", run.id, run.title);
    // The policy travels with a saved copy too (a <meta> policy cannot forbid framing).
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>{}</title>\n<link rel=\"icon\" href=\"data:,\">\n",
        escape(&policy.0),
        escape(&title)
    );
    if let Some(uplot) = uplot {
        let _ = writeln!(html, "<style>{}</style>", uplot.style);
    }
    let _ = writeln!(html, "<style>{REPORT_STYLE}</style>\n</head>\n<body>");
    header(&mut html, data);
    html.push_str("<main>\n");
    charts(&mut html, data, uplot);
    summary_table(&mut html, data);
    targets(&mut html, data);
    totals(&mut html, data);
    if let Some(baseline) = &data.baseline {
        baseline_section(&mut html, baseline);
    }
    plan(&mut html, data);
    let _ = writeln!(
        html,
        "<section id=\"script\">\n<h2>k6 script</h2>\n<pre><code>{}</code></pre>\n</section>",
        escape(&data.script)
    );
    let _ = writeln!(
        html,
        "</main>\n<footer>Made by Metric Vault at {}{}.</footer>",
        time(data.generated_at),
        uplot.map(|uplot| format!(" · charts by uPlot {}", escape(uplot.version))).unwrap_or_default()
    );
    let _ =
        writeln!(html, "<script type=\"application/json\" id=\"report-data\">{}</script>", embed_json(data));
    if let Some(uplot) = uplot {
        let _ = writeln!(html, "<script>{}</script>", uplot.script);
    }
    let _ = writeln!(html, "<script>{REPORT_SCRIPT}</script>\n</body>\n</html>");
    html
}

fn header(html: &mut String, data: &ReportData) {
    let run = &data.run;
    let _ = write!(
        html,
        "<header>\n<p class=\"kicker\">Metric Vault · load-test report · run {}</p>\n<h1 id=\"run-title\">{}</h1>\n\
         <p class=\"badges\"><span class=\"badge status-{}\">{}</span> <span class=\"badge verdict-{}\">verdict {}</span></p>\n",
        run.id,
        escape(&run.title),
        escape(&run.status.to_lowercase()),
        escape(&run.status),
        escape(&run.verdict.to_lowercase()),
        escape(&run.verdict)
    );
    if let Some(description) = &run.description {
        let _ = writeln!(html, "<p class=\"description\">{}</p>", escape(description));
    }
    html.push_str("<dl class=\"facts\">\n");
    let mut fact = |name: &str, value: String| {
        let _ = writeln!(html, "<div><dt>{name}</dt><dd>{value}</dd></div>");
    };
    fact("Launched", time(run.tested_at));
    fact("Started", run.started_at.map_or_else(|| "—".into(), time));
    fact("Ended", run.completed_at.map_or_else(|| "—".into(), time));
    if let (Some(started), Some(ended)) = (run.started_at, run.completed_at) {
        fact("Ran for", duration((ended - started).num_milliseconds() as f64 / 1000.0));
    }
    fact("Runner", format!("{} × {}", escape(&run.runner.to_lowercase()), run.parallelism));
    if let Some(target) = run.target_tps {
        fact("Target TPS", number(target, 1));
    }
    if let Some(plan) = run.plan {
        fact(
            "Plan",
            format!("{}{}", plan.id, plan.version.map(|v| format!(" (version {v})")).unwrap_or_default()),
        );
    }
    html.push_str("</dl>\n");
    if let Some(reason) = &run.failure_reason {
        let _ = writeln!(html, "<p class=\"note warn\">{}</p>", escape(reason));
    }
    if run.results_pending {
        html.push_str("<p class=\"note warn\">The run's results are still being read from InfluxDB.</p>\n");
    } else if let Some(missing) = run.missing_samples.filter(|missing| *missing > 0) {
        let _ = writeln!(
            html,
            "<p class=\"note\">InfluxDB holds {missing} request sample(s) fewer than k6 reported: the counts are k6's own, \
             time-based figures rest on the stored samples.</p>"
        );
    }
    html.push_str("</header>\n");
}

fn charts(html: &mut String, data: &ReportData, uplot: Option<&Uplot>) {
    html.push_str("<section id=\"charts\">\n<h2>Over time</h2>\n");
    match (&data.charts, uplot) {
        (Charts::Unavailable { reason }, _) => {
            let _ = writeln!(html, "<p class=\"note\" id=\"charts-note\">{}</p>", escape(reason));
        }
        (Charts::Drawn { .. }, None) => html.push_str(
            "<p class=\"note\" id=\"charts-note\">Charts are unavailable in this build: uPlot was not installed when \
             the server was built. Run <code>npm ci --prefix web</code> (scripts/setup.sh does it) and build again; \
             the data is in this page all the same.</p>\n",
        ),
        (Charts::Drawn { step_seconds, .. }, Some(_)) => {
            let _ = writeln!(
                html,
                "<p class=\"hint\">One point per {step_seconds} s. Response-time percentiles are per interval; \
                 VUs are the whole run's (k6 does not count them per scenario).</p>\n\
                 <div id=\"chart-groups\"><noscript>The charts need JavaScript.</noscript></div>"
            );
        }
    }
    html.push_str("</section>\n");
}

/// Column heads of the summary table, and each row's cells from a summary.
const SUMMARY_HEADS: [&str; 11] = [
    "Requests",
    "Failed",
    "TPS avg",
    "TPS max",
    "Avg ms",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "Max ms",
    "Error rate",
    "VUs max",
];

fn summary_cells(figures: Option<&Figures>) -> String {
    let Some(f) = figures else {
        return format!("<td colspan=\"{}\" class=\"empty\">no results</td>", SUMMARY_HEADS.len());
    };
    [
        count(f.total_requests),
        count(f.failed_requests),
        number(f.avg_tps, 1),
        number(f.max_tps, 0),
        millis(f.avg_response_time),
        millis(f.p50_response_time),
        millis(f.p95_response_time),
        millis(f.p99_response_time),
        millis(f.max_response_time),
        percent(f.avg_error_rate),
        number(f.max_vus, 0),
    ]
    .iter()
    .map(|cell| format!("<td>{cell}</td>"))
    .collect()
}

fn summary_table(html: &mut String, data: &ReportData) {
    html.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n<table>\n<thead><tr><th></th>");
    for head in SUMMARY_HEADS {
        let _ = write!(html, "<th>{head}</th>");
    }
    let _ = writeln!(
        html,
        "</tr></thead>\n<tbody>\n<tr class=\"run\"><th>Run</th>{}</tr>",
        summary_cells(data.run.summary.as_ref())
    );
    for scenario in &data.scenarios {
        let _ = writeln!(
            html,
            "<tr><th>{}</th>{}</tr>",
            escape(&scenario.name),
            summary_cells(scenario.summary.as_ref())
        );
    }
    html.push_str("</tbody>\n</table>\n<p class=\"hint\">Counts are k6's own when every instance reported them; \
        times and rates come from the samples in InfluxDB, percentiles interpolated as k6 does.</p>\n</section>\n");
}

fn targets(html: &mut String, data: &ReportData) {
    html.push_str(
        "<section id=\"targets\">\n<h2>Targets and verdicts</h2>\n<table>\n<thead><tr><th></th><th>Target</th>\
         <th>Measured</th><th>Verdict</th></tr></thead>\n<tbody>\n",
    );
    let run = &data.run;
    let measured_tps = run.summary.as_ref().map_or_else(|| "—".into(), |f| number(f.avg_tps, 1));
    let _ = writeln!(
        html,
        "<tr class=\"run\"><th>Run</th><td>{}</td><td>{measured_tps} TPS avg</td>{}</tr>",
        run.target_tps.map_or_else(|| "—".into(), |target| format!("≥ {} TPS avg", number(target, 1))),
        verdict_cell(&run.verdict)
    );
    for scenario in &data.scenarios {
        let mut wanted = Vec::new();
        let mut measured = Vec::new();
        if let Some(target) = scenario.response_time_target {
            wanted.push(format!("p95 ≤ {} ms", millis(target)));
            measured.push(
                scenario
                    .summary
                    .as_ref()
                    .map_or_else(|| "—".into(), |f| format!("p95 {} ms", millis(f.p95_response_time))),
            );
        }
        if let Some(target) = scenario.error_rate_target {
            wanted.push(format!("errors ≤ {}", percent(target)));
            measured.push(
                scenario
                    .summary
                    .as_ref()
                    .map_or_else(|| "—".into(), |f| format!("errors {}", percent(f.avg_error_rate))),
            );
        }
        let none = || "none".to_owned();
        let _ = writeln!(
            html,
            "<tr><th>{}</th><td>{}</td><td>{}</td>{}</tr>",
            escape(&scenario.name),
            if wanted.is_empty() { none() } else { wanted.join(", ") },
            if measured.is_empty() { "—".into() } else { measured.join(", ") },
            verdict_cell(&scenario.verdict)
        );
    }
    html.push_str(
        "</tbody>\n</table>\n<p class=\"hint\">Each scenario's targets are k6 thresholds on its requests; \
        the run fails when a scenario fails or its average TPS stays under the target.</p>\n</section>\n",
    );
}

fn verdict_cell(verdict: &str) -> String {
    format!(
        "<td><span class=\"badge verdict-{}\">{}</span></td>",
        escape(&verdict.to_lowercase()),
        escape(verdict)
    )
}

fn totals(html: &mut String, data: &ReportData) {
    let rows: Vec<(String, &Totals)> = std::iter::once(("Run".to_owned(), data.run.totals.as_ref()))
        .chain(data.scenarios.iter().map(|s| (escape(&s.name), s.totals.as_ref())))
        .filter_map(|(name, totals)| Some((name, totals?)))
        .collect();
    if rows.is_empty() {
        return;
    }
    html.push_str(
        "<section id=\"totals\">\n<h2>k6's own totals</h2>\n<table>\n<thead><tr><th></th><th>Requests</th>\
         <th>Failed</th><th>Iterations</th><th>Data sent</th><th>Data received</th></tr></thead>\n<tbody>\n",
    );
    for (name, t) in rows {
        let _ = writeln!(
            html,
            "<tr><th>{name}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            count(t.requests),
            count(t.failed_requests),
            count(t.iterations),
            bytes(t.data_sent),
            bytes(t.data_received)
        );
    }
    html.push_str("</tbody>\n</table>\n</section>\n");
}

fn baseline_section(html: &mut String, baseline: &BaselineComparison) {
    let _ = writeln!(
        html,
        "<section id=\"baseline\">\n<h2>Compared with the baseline</h2>\n<p>Baseline: run {} · {} · {}</p>\n<table>\n\
         <thead><tr><th></th><th>Figure</th><th>Baseline</th><th>This run</th><th>Change (interval)</th><th>Verdict</th></tr></thead>\n<tbody>",
        baseline.baseline_id,
        escape(&baseline.baseline_title),
        time(baseline.baseline_tested_at)
    );
    let value = |v: Option<f64>| v.map_or_else(|| "—".into(), |v| number(v, 2));
    for row in &baseline.rows {
        let _ = writeln!(
            html,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(row.scope.as_deref().unwrap_or("Run")),
            escape(&row.metric),
            value(row.baseline),
            value(row.candidate),
            escape(row.change.as_deref().unwrap_or("—")),
            escape(row.verdict.as_deref().unwrap_or("—"))
        );
    }
    html.push_str("</tbody>\n</table>\n</section>\n");
}

fn plan(html: &mut String, data: &ReportData) {
    html.push_str("<section id=\"plan\">\n<h2>Plan</h2>\n");
    for scenario in &data.scenarios {
        plan_scenario(html, scenario);
    }
    html.push_str("</section>\n");
}

fn plan_scenario(html: &mut String, s: &ScenarioFacts) {
    let _ = writeln!(
        html,
        "<article class=\"scenario\">\n<h3>{}</h3>\n<p><code>{}</code></p>\n<dl class=\"facts\">\
         <div><dt>Executor</dt><dd>{}</dd></div><div><dt>Think time</dt><dd>{} s</dd></div>\
         <div><dt>k6 scenario</dt><dd>{}</dd></div>{}</dl>",
        escape(&s.name),
        escape(s.endpoint.as_deref().unwrap_or("(endpoint no longer in the catalogue)")),
        escape(&s.executor),
        number(s.think_time, 2),
        escape(&s.scenario_tag),
        s.max_vus_limit
            .map(|limit| format!("<div><dt>Max VUs</dt><dd>{limit}</dd></div>"))
            .unwrap_or_default()
    );
    let unit = if s.executor.contains("arrival-rate") { "iterations/s" } else { "VUs" };
    let _ = write!(
        html,
        "<table class=\"stages\">\n<thead><tr><th>Stage</th><th>Duration</th><th>Target ({unit})</th></tr></thead>\n<tbody>"
    );
    for (index, stage) in s.stages.iter().enumerate() {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            index + 1,
            escape(&stage.duration),
            stage.target
        );
    }
    html.push_str("</tbody>\n</table>\n");
    if let Some(request) = &s.request {
        let pretty = serde_json::to_string_pretty(request).unwrap_or_default();
        let _ = writeln!(
            html,
            "<p>Request values</p>\n<pre class=\"request\"><code>{}</code></pre>",
            escape(&pretty)
        );
    }
    html.push_str("</article>\n");
}

/// `text` safe in HTML text and in quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `data` as JSON that can sit inside `<script>…</script>`: `<`, `>` and `&` as `\u` escapes (so
/// no `</script>` or `<!--` can appear), and U+2028/U+2029 too (line ends to older JavaScript).
/// All of them can only occur inside JSON strings, where the escapes mean the same characters.
pub fn embed_json(data: &impl serde::Serialize) -> String {
    let json = serde_json::to_string(data).expect("report data serialises");
    let mut embedded = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => embedded.push_str("\\u003c"),
            '>' => embedded.push_str("\\u003e"),
            '&' => embedded.push_str("\\u0026"),
            '\u{2028}' => embedded.push_str("\\u2028"),
            '\u{2029}' => embedded.push_str("\\u2029"),
            c => embedded.push(c),
        }
    }
    embedded
}

#[cfg(test)]
mod tests;
