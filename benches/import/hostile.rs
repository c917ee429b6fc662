//! `--hostile`: the costliest documents the import limits still accept, and ones they refuse
//! (issue 14, item 6): YAML aliases and `$ref` fan-out, each imported once in a child process
//! of its own so its peak RSS (`VmHWM`) is its own.
//!
//! Run: `cargo bench --bench import -- --hostile`.

use std::{path::Path, process::Command, time::Instant};

use anyhow::{Context, ensure};
use metric_vault::{
    db::{connect_and_migrate, repo::import::import_spec},
    openapi::{ParseLimits, parse_document_within},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{common::machine, create_project, peak_rss_mib};

/// What a `--hostile-single` child prints on its last stdout line.
#[derive(Serialize, Deserialize)]
struct HostileReport {
    /// `VmHWM` before the document is read, after connecting and migrating.
    baseline_mib: f64,
    /// `VmHWM` after the import (or its refusal).
    peak_mib: f64,
    parse_ms: f64,
    store_ms: f64,
    /// "N endpoints" or the refusal's message.
    outcome: String,
}

/// A valid document whose extension `x-payload` holds `payload` (YAML, indented by 2).
fn yaml_document(payload: &str) -> String {
    format!(
        "openapi: 3.0.0\ninfo: {{title: Hostile, version: '1'}}\nservers: [{{url: 'http://127.0.0.1:9/'}}]\n\
         paths:\n  /ok:\n    get: {{}}\nx-payload:\n{payload}"
    )
}

/// One anchor of 1,000 strings of 60 bytes, aliased `uses` times: 1,001 values and 60 KB of
/// text per alias, so the most of both the values and the repeated-text limits.
fn alias_fan(uses: usize) -> String {
    let strings = vec![format!("'{}'", "y".repeat(60)); 1000].join(",");
    yaml_document(&format!("  a: &a [{strings}]\n  b: [{}]\n", vec!["*a"; uses].join(",")))
}

/// Ten levels of ten aliases of the level below: 10^10 values from under 1 KB.
fn billion_laughs() -> String {
    let mut payload = String::from("  l0: &l0 [lol]\n");
    for level in 1..=10 {
        payload.push_str(&format!(
            "  l{level}: &l{level} [{}]\n",
            vec![format!("*l{}", level - 1); 10].join(",")
        ));
    }
    yaml_document(&payload)
}

/// Eight schemas, each an `allOf` of the next twice, the last with 100 KB of description:
/// every request body inlines 128 copies (12.8 MB), `operations` times.
fn ref_fan_out(operations: usize) -> String {
    let mut schemas = Map::new();
    for level in 0..7 {
        let next = json!({ "$ref": format!("#/components/schemas/S{}", level + 1) });
        schemas.insert(format!("S{level}"), json!({ "allOf": [next.clone(), next] }));
    }
    schemas.insert("S7".into(), json!({ "type": "string", "description": "x".repeat(100_000) }));
    let body =
        json!({ "content": { "application/json": { "schema": { "$ref": "#/components/schemas/S0" } } } });
    let paths: Map<String, Value> = (0..operations)
        .map(|n| (format!("/op{n}"), json!({ "post": { "requestBody": body.clone() } })))
        .collect();
    json!({ "openapi": "3.0.0", "info": { "title": "Fan-out", "version": "1" },
            "servers": [{ "url": "http://127.0.0.1:9/" }], "paths": paths, "components": { "schemas": schemas } })
    .to_string()
}

/// The child: one import of `file` into a fresh SQLite database, within the default limits.
pub async fn single(file: &Path) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let (db, _) =
        connect_and_migrate(&format!("sqlite://{}/mv.db?mode=rwc", scratch.path().display())).await?;
    let project_id = create_project(&db, "hostile").await?;
    let text = std::fs::read_to_string(file)?;
    let baseline_mib = peak_rss_mib()?;
    let started = Instant::now();
    let parsed = parse_document_within(&text, None, None, &ParseLimits::DEFAULT);
    let parse_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (store_ms, outcome) = match parsed {
        Ok(parsed) => {
            let started = Instant::now();
            import_spec(&db, project_id, &parsed, None)
                .await
                .map_err(|err| anyhow::anyhow!("import_spec failed: {err:?}"))?;
            (
                started.elapsed().as_secs_f64() * 1000.0,
                format!("accepted, {} endpoints", parsed.endpoints.len()),
            )
        }
        Err(refusal) => (0.0, format!("refused: {refusal}")),
    };
    let report = HostileReport { baseline_mib, peak_mib: peak_rss_mib()?, parse_ms, store_ms, outcome };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The parent: writes each document, imports it in a child, prints a table.
pub fn run(command: &str) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let documents = [
        ("YAML aliases: 1 anchor × 990 (accepted)", alias_fan(990)),
        ("YAML aliases: 1 anchor × 2,000 (refused)", alias_fan(2000)),
        ("YAML billion laughs, 10^10 values (refused)", billion_laughs()),
        ("$ref fan-out 2^7 × 100 KB, 4 operations (accepted)", ref_fan_out(4)),
        ("$ref fan-out 2^7 × 100 KB, 40 operations (refused)", ref_fan_out(40)),
    ];
    let exe = std::env::current_exe().context("locating the benchmark executable")?;
    println!("Metric Vault import benchmark: hostile documents, default limits");
    println!("command: {command}");
    println!("machine: {}", machine());
    println!("limits:  {:?}", ParseLimits::DEFAULT);
    println!();
    println!(
        "| document | text | parse | store | peak RSS (baseline) | outcome |\n|---|---:|---:|---:|---:|---|"
    );
    for (index, (name, text)) in documents.iter().enumerate() {
        let path = scratch.path().join(format!("hostile-{index}.txt"));
        std::fs::write(&path, text)?;
        let output =
            Command::new(&exe).arg("--hostile-single").arg(&path).output().context("running a child")?;
        ensure!(
            output.status.success(),
            "{name}: the child failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let report: HostileReport = serde_json::from_str(stdout.lines().last().context("no report")?)?;
        let outcome: String = report.outcome.chars().take(110).collect();
        println!(
            "| {name} | {:.1} KB | {:.0} ms | {:.0} ms | {:.0} MiB ({:.0}) | {outcome} |",
            text.len() as f64 / 1024.0,
            report.parse_ms,
            report.store_ms,
            report.peak_mib,
            report.baseline_mib
        );
    }
    Ok(())
}
